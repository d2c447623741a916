/** What /proc says about who holds a file open: for tests that check who writes a FIFO. */
import { lstatSync, readdirSync, readlinkSync } from "node:fs";

/** Pids of the processes that hold `path` open for writing. */
export function writersOf(path: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      for (const fd of readdirSync(`/proc/${p}/fd`)) {
        const link = `/proc/${p}/fd/${fd}`;
        if (readlinkSync(link) === path && lstatSync(link).mode & 0o200) {
          out.push(Number(p));
          break;
        }
      }
    } catch {}
  }
  return out;
}
