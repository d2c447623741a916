/** Resident memory and CPU time of a process tree, read from /proc. */
import { readdirSync, readFileSync } from "node:fs";

function children(): Map<number, number[]> {
  const tree = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = tree.get(ppid) ?? [];
      list.push(Number(name));
      tree.set(ppid, list);
    } catch {}
  }
  return tree;
}

export function processTree(root: number): number[] {
  const tree = children();
  const out: number[] = [];
  const walk = (pid: number) => {
    out.push(pid);
    for (const c of tree.get(pid) ?? []) walk(c);
  };
  walk(root);
  return out;
}

export function rssBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]) * 1024;
    } catch {}
  }
  return total;
}

/** utime + stime in clock ticks (100 per second on Linux). */
export function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      total += Number(fields[11]) + Number(fields[12]);
    } catch {}
  }
  return total;
}
