/**
 * A host-wide lock (an atomic mkdir under /run/lock) around "pick a free subnet, bring
 * its bridge up": two daemons on one host (parallel tests, a dev daemon) must never
 * pick the same subnet because neither had routed it yet. A holder that died leaves a
 * stale lock, which is broken after STALE_MS.
 */
import { mkdirSync, rmdirSync, statSync } from "node:fs";

const LOCK_DIR = "/run/lock/arcbox-netd-ipam";
const STALE_MS = 10_000;

export async function withHostLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync("/run/lock", { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK_DIR);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      try {
        if (Date.now() - statSync(LOCK_DIR).mtimeMs > STALE_MS) rmdirSync(LOCK_DIR);
      } catch {}
      await Bun.sleep(10);
    }
  }
  try {
    return await fn();
  } finally {
    try {
      rmdirSync(LOCK_DIR);
    } catch {}
  }
}
