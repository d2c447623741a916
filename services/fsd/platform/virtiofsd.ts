/**
 * One arcbox-virtiofsd process (native/virtiofs): spawning it detached (own session, so
 * it outlives fsd like the qemu it serves), waiting for its socket, reading its stats
 * file, and telling whether a recorded pid is still that server.
 */
import { closeSync, existsSync, openSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { REPO_ROOT } from "../../../lib/entry.ts";
import { VolumeError } from "../core/volume-error.ts";

export const VIRTIOFSD = join(REPO_ROOT, "native", "bin", "arcbox-virtiofsd");
export type CacheMode = "auto" | "always" | "never";

export interface ServerConfig {
  socketPath: string;
  statsPath: string;
  /** The server's watch socket: an fsd that did not spawn it learns of its exit there. */
  watchPath: string;
  logPath: string;
  hostDir: string;
  readOnly: boolean;
  cacheMode: CacheMode;
}

export function serverArgv(c: ServerConfig): string[] {
  return [VIRTIOFSD, "--socket", c.socketPath, "--shared-dir", c.hostDir, "--cache", c.cacheMode, "--stats", c.statsPath, "--watch-socket", c.watchPath, ...(c.readOnly ? ["--read-only"] : [])];
}

export function spawnServer(c: ServerConfig): Subprocess {
  if (!existsSync(VIRTIOFSD)) throw new VolumeError("failed_precondition", `${VIRTIOFSD} is missing: run scripts/build-native.sh`);
  rmSync(c.socketPath, { force: true });
  rmSync(c.watchPath, { force: true });
  const logFd = openSync(c.logPath, "a");
  try {
    const proc = Bun.spawn(serverArgv(c), { stdio: ["ignore", logFd, logFd], detached: true });
    proc.unref();
    return proc;
  } finally {
    closeSync(logFd);
  }
}

/**
 * Resolves once the server listens: it binds under a temporary name and renames the socket
 * into place only after listen(), so existence means ready. A bounded start-up wait.
 */
export async function waitListening(proc: Subprocess, socketPath: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    if (existsSync(socketPath)) return;
    if (proc.exitCode !== null || proc.signalCode !== null) throw new VolumeError("internal", `arcbox-virtiofsd exited (${proc.exitCode ?? proc.signalCode}) before listening on ${socketPath}`);
    if (Date.now() > deadline) throw new VolumeError("unavailable", `arcbox-virtiofsd did not listen on ${socketPath} within ${timeoutMs} ms`);
    await Bun.sleep(delay);
  }
}

/**
 * Resolves with a promise of the server's exit, for a server fsd did not spawn (adopted
 * after an fsd restart): the server holds our connection to its watch socket open while
 * it lives, so the connection closing is its exit. Undefined when it cannot be reached.
 */
export function watchExit(watchPath: string): Promise<{ exited: Promise<void> } | undefined> {
  return new Promise((resolve) => {
    const sock = connect(watchPath);
    const exited = new Promise<void>((gone) => sock.once("close", () => gone()));
    sock.once("connect", () => {
      sock.unref();
      resolve({ exited }); // wrapped: resolving with the promise itself would wait for the exit
    });
    sock.once("error", () => resolve(undefined));
  });
}

/** Whether pid is alive and is the server of socketPath (not a recycled pid). */
export function isServer(pid: number, socketPath: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv[0] === VIRTIOFSD && argv.includes(socketPath);
  } catch {
    return false;
  }
}

export interface ServerStats {
  requests: bigint;
  errors: bigint;
  bytesRead: bigint;
  bytesWritten: bigint;
  batches: bigint;
  notifies: bigint;
  lookups: bigint;
  inodes: bigint;
  openHandles: bigint;
  connected: boolean;
  escapesRefused: bigint;
  /** Inode fds open now, and evictions so far (0 from servers older than these slots). */
  inodeFds: bigint;
  evictions: bigint;
}
const STATS_MAGIC = 0x31534656;

/** The counters the server keeps in its MAP_SHARED stats file (layout: native/virtiofs/README.md). */
export function readStats(statsPath: string): ServerStats | undefined {
  let buf: Buffer;
  try {
    buf = readFileSync(statsPath);
  } catch {
    return undefined;
  }
  if (buf.length < 8 + 11 * 8 || buf.readUInt32LE(0) !== STATS_MAGIC) return undefined;
  const v = (i: number) => (buf.length >= 8 + (i + 1) * 8 ? buf.readBigUInt64LE(8 + i * 8) : 0n);
  return {
    requests: v(0),
    errors: v(1),
    bytesRead: v(2),
    bytesWritten: v(3),
    batches: v(4),
    notifies: v(5),
    lookups: v(6),
    inodes: v(7),
    openHandles: v(8),
    connected: v(9) !== 0n,
    escapesRefused: v(10),
    inodeFds: v(11),
    evictions: v(12),
  };
}
