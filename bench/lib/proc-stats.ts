/** Memory (RSS, PSS) and CPU time of sets of processes, read from /proc. */
import { readdirSync, readFileSync } from "node:fs";

function allPids(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}

function children(): Map<number, number[]> {
  const tree = new Map<number, number[]>();
  for (const pid of allPids()) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = tree.get(ppid) ?? [];
      list.push(pid);
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

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
}

/**
 * An engine's own processes: the tree under `root`, plus every process whose command
 * line names `marker` (a home or data root: detached agents and shims), without
 * container workloads (whose command is in `exclude`, e.g. "sleep").
 */
export function engineProcesses(root: number, marker: string, exclude: string[] = []): number[] {
  const pids = new Set(processTree(root));
  for (const pid of allPids()) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(marker)) pids.add(pid);
    } catch {}
  }
  return [...pids].filter((p) => !exclude.includes(comm(p)));
}

function statusField(pid: number, re: RegExp, file = "status"): number {
  try {
    const m = re.exec(readFileSync(`/proc/${pid}/${file}`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export function rssBytes(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + statusField(pid, /VmRSS:\s+(\d+) kB/), 0);
}

/** Proportional set size: shared pages (the bun binary, libc) split among their users. */
export function pssBytes(pids: number[]): number {
  return pids.reduce((sum, pid) => sum + statusField(pid, /^Pss:\s+(\d+) kB/m, "smaps_rollup"), 0);
}

/** A process's short name: the script a Bun process runs (apid.js), else its comm. */
function shortName(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const script = argv.find((a) => /\.(js|ts)$/.test(a));
    if (script) return script.slice(script.lastIndexOf("/") + 1);
  } catch {}
  return comm(pid);
}

/**
 * What each process's memory is made of (smaps_rollup, MB), grouped by short name:
 * PSS, and the anonymous part (heaps: private to the process, unlike the shared binary).
 */
export function memoryBreakdown(pids: number[]): { name: string; count: number; pssMB: number; anonMB: number }[] {
  const groups = new Map<string, { name: string; count: number; pssMB: number; anonMB: number }>();
  for (const pid of pids) {
    const name = shortName(pid);
    const g = groups.get(name) ?? { name, count: 0, pssMB: 0, anonMB: 0 };
    g.count++;
    g.pssMB += statusField(pid, /^Pss:\s+(\d+) kB/m, "smaps_rollup") / 1e6;
    g.anonMB += statusField(pid, /^Anonymous:\s+(\d+) kB/m, "smaps_rollup") / 1e6;
    groups.set(name, g);
  }
  return [...groups.values()].sort((a, b) => b.pssMB - a.pssMB);
}

/**
 * The processes' memory as if nothing else on the machine shared their files: every
 * anonymous page, plus each mapped file's resident pages once (the largest resident
 * size any of them maps of it). PSS splits the bun or dockerd binary among all its users,
 * other engines and other benches included, so it moves with what else runs; this
 * does not.
 */
export function aloneBytes(pids: number[]): number {
  let anonKB = 0;
  const fileKB = new Map<string, number>();
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/smaps`, "utf8");
    } catch {
      continue;
    }
    const perFile = new Map<string, number>();
    let file: string | undefined;
    for (const line of text.split("\n")) {
      const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
      if (header) {
        const path = header[1]!;
        file = path.startsWith("/") ? path : undefined;
        continue;
      }
      if (line.startsWith("Anonymous:")) anonKB += Number(line.split(/\s+/)[1]);
      else if (file && line.startsWith("Rss:")) perFile.set(file, (perFile.get(file) ?? 0) + Number(line.split(/\s+/)[1]));
    }
    for (const [f, kb] of perFile) fileKB.set(f, Math.max(fileKB.get(f) ?? 0, kb));
  }
  let total = anonKB;
  for (const kb of fileKB.values()) total += kb;
  return total * 1024;
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

/**
 * CPU time in ns of every thread of the processes (/proc/PID/task/TID/schedstat), for
 * idle measurements: clock ticks (10 ms) are too coarse for a few ms per minute.
 */
export function threadCpuNanos(pids: number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        out.set(`${pid}/${tid}`, Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]));
      } catch {}
    }
  }
  return out;
}

/** CPU ns used between two snapshots; a thread that exited meanwhile counts as nothing. */
export function cpuNanosBetween(before: Map<string, number>, after: Map<string, number>): number {
  let total = 0;
  for (const [k, v] of after) total += v - (before.get(k) ?? 0);
  return total;
}
