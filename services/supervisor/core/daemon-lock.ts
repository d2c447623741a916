/**
 * The home lock: one daemon per ARCBOX_HOME. An flock on run/arcboxd.lock, which the
 * kernel releases when the holder dies, so a crashed daemon never blocks the next.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import { tryLockExclusive } from "../../../native/libc.ts";
import { ArcboxError } from "../../../lib/errors.ts";

export class DaemonLock {
  private constructor(private readonly fd: number) {}

  static acquire(path: string, home: string): DaemonLock {
    const fd = openSync(path, "a+", 0o600);
    if (!tryLockExclusive(fd)) {
      closeSync(fd);
      let holder = "";
      try {
        holder = readFileSync(path, "utf8").trim();
      } catch {}
      throw new ArcboxError("already_exists", `another ArcBox daemon${holder ? ` (pid ${holder})` : ""} is already running with home ${home}; stop it with 'arcbox stop' or use a different --home`);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`);
    return new DaemonLock(fd);
  }

  release(): void {
    try {
      ftruncateSync(this.fd, 0);
    } finally {
      closeSync(this.fd); // closing the descriptor drops the flock
    }
  }
}
