/**
 * cgroup files of a container (path /arcbox/<id>: in each v1 hierarchy, or once in the
 * v2 unified hierarchy): removal of leftovers after a failed create, raw reads for stats,
 * and where the kernel counts OOM kills. With v2, pass "" as the controller.
 */
import { existsSync, readFileSync, readdirSync, rmdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

const ROOT = "/sys/fs/cgroup";
/** A pure cgroup v2 host (a VM's kernel, most current distributions). */
export const CGROUP_V2 = existsSync(join(ROOT, "cgroup.controllers"));

/** The file with an "oom_kill N" line for this cgroup (the shim reads it at exit). */
export function oomCountersPath(cgroupPath: string): string {
  return CGROUP_V2 ? join(ROOT, cgroupPath, "memory.events") : join(ROOT, "memory", cgroupPath, "memory.oom_control");
}

export function cgroupDir(controller: string, cgroupPath: string): string {
  return join(ROOT, controller, cgroupPath);
}

export function readCgroupFile(controller: string, cgroupPath: string, file: string): string | undefined {
  try {
    return readFileSync(join(cgroupDir(controller, cgroupPath), file), "utf8");
  } catch {
    return undefined;
  }
}

export function readCgroupNumber(controller: string, cgroupPath: string, file: string): number {
  const v = readCgroupFile(controller, cgroupPath, file);
  return v === undefined ? 0 : Number(v.trim().split(/\s+/)[0]) || 0;
}

/** key value lines (memory.stat, cpu.stat) as a record. */
export function readCgroupKeyValues(controller: string, cgroupPath: string, file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (readCgroupFile(controller, cgroupPath, file) ?? "").split("\n")) {
    const [k, v] = line.split(" ");
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

/**
 * Removes a stopped container's cgroup dirs (what `runc delete` does for it, without
 * a runc process). A dir that is still busy (a task not yet gone) is retried briefly.
 */
export async function removeCgroupsOfStopped(cgroupPath: string): Promise<void> {
  const dirs = CGROUP_V2 ? [join(ROOT, cgroupPath)] : readdirSafe(ROOT).map((c) => join(ROOT, c, cgroupPath));
  for (const dir of dirs) {
    for (let attempt = 0; ; attempt++) {
      try {
        rmdirSync(dir);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EBUSY" || attempt >= 20) break;
        await Bun.sleep(5);
      }
    }
  }
}

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes the (empty) cgroup dirs of a container in every hierarchy. */
export function removeCgroups(cgroupPath: string): void {
  if (CGROUP_V2) {
    try {
      rmdirSync(join(ROOT, cgroupPath));
    } catch {}
    return;
  }
  let controllers: string[];
  try {
    controllers = readdirSync(ROOT);
  } catch {
    return;
  }
  for (const c of controllers) {
    try {
      rmdirSync(join(ROOT, c, cgroupPath));
    } catch {}
  }
}

/**
 * Starts the kernel's cgroup-migration slow path ahead of `runc create` or an exec's
 * cgroup join. The first write to any cgroup.procs after a quiet spell waits for an RCU
 * grace period (~15 ms here: cgroup_threadgroup_rwsem); writers arriving within the next
 * grace period do not. Re-adding a process to the cgroup it is already in moves nothing
 * but takes that path. Async (a threadpool write): never blocks the agent.
 */
export function warmCgroupMigration(cgroupPath: string, pidInCgroup: number): void {
  const procs = CGROUP_V2 ? join(ROOT, cgroupPath, "cgroup.procs") : join(ROOT, "pids", cgroupPath, "cgroup.procs");
  void writeFile(procs, String(pidInCgroup)).catch(() => {});
}

/** The same before a container exists: we re-add ourselves to our own cgroup. */
export function warmCgroupMigrationForCreate(): void {
  const own = ownCgroupPath();
  if (own) warmCgroupMigration(own, process.pid);
}

let ownPath: string | null | undefined;
/**
 * Our cgroup (pids hierarchy, or v2), only when that dir really lists us: in a cgroup
 * namespace /proc/self/cgroup is relative, and writing there would move us.
 */
function ownCgroupPath(): string | null {
  if (ownPath !== undefined) return ownPath;
  ownPath = null;
  try {
    const lines = readFileSync("/proc/self/cgroup", "utf8").split("\n");
    const line = CGROUP_V2 ? lines.find((l) => l.startsWith("0::")) : lines.find((l) => l.split(":")[1] === "pids");
    const path = line?.split(":").slice(2).join(":");
    const procs = path === undefined ? "" : CGROUP_V2 ? join(ROOT, path, "cgroup.procs") : join(ROOT, "pids", path, "cgroup.procs");
    if (path !== undefined && readFileSync(procs, "utf8").split("\n").includes(String(process.pid))) ownPath = path;
  } catch {}
  return ownPath;
}
