/**
 * Runs the virtio-serial relay (native/serial/arcbox-serial-relay.c) that carries the
 * agent protocol between the host (vmm, through qemu's virtserialport) and this agent's
 * FIFO pair (the sessions AgentServer.serveFifoSessions serves; a socket connection
 * would wake the agent every second), one host session per connection. It is the
 * agent's child (it dies with it) and is restarted if it exits; restarts back off so a
 * missing port cannot spin.
 */
import { existsSync, lstatSync, rmSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../lib/entry.ts";
import type { Logger } from "../../lib/log.ts";

export const SERIAL_RELAY = join(REPO_ROOT, "native", "bin", "arcbox-serial-relay");

export class SerialRelay {
  private proc: ReturnType<typeof Bun.spawn> | undefined;
  private stopped = false;
  private backoffMs = 100;

  constructor(
    private readonly port: string,
    private readonly fifos: { in: string; out: string },
    private readonly log: Logger,
  ) {}

  start(): void {
    if (!existsSync(SERIAL_RELAY)) throw new Error(`${SERIAL_RELAY} is missing (scripts/build-guest.sh builds it)`);
    this.spawn();
  }

  stop(): void {
    this.stopped = true;
    this.proc?.kill();
  }

  private spawn(): void {
    const startedAt = Date.now();
    this.proc = Bun.spawn([SERIAL_RELAY, this.port, this.fifos.in, this.fifos.out], { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
    void this.proc.exited.then((code) => {
      if (this.stopped) return;
      // A relay that ran for a while gets a quick restart; one that keeps failing, less so.
      this.backoffMs = Date.now() - startedAt > 10_000 ? 100 : Math.min(this.backoffMs * 2, 10_000);
      this.log.error("serial relay exited; restarting", { code, port: this.port, inMs: this.backoffMs });
      setTimeout(() => this.spawn(), this.backoffMs);
    });
  }
}

/**
 * Makes the FIFOs with mkfifo(1): in a VM the agent runs without the JIT, where bun:ffi
 * (ensureFifo's mknod) does not load. Anything else at those paths is replaced.
 */
export function makeFifos(paths: readonly string[]): void {
  const missing = paths.filter((path) => {
    try {
      if (lstatSync(path).isFIFO()) return false;
      rmSync(path, { force: true, recursive: true });
    } catch {}
    return true;
  });
  if (!missing.length) return;
  // One process for all of them: each spawn is costly in a TCG guest.
  const p = Bun.spawnSync(["mkfifo", "-m", "600", ...missing], { stdout: "ignore", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`mkfifo ${missing.join(" ")}: ${p.stderr.toString().trim()}`);
}
