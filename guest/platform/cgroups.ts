/**
 * cgroup files of a container (path /arcbox/<id>: in each v1 hierarchy, or once in the
 * v2 unified hierarchy): removal of leftovers after a failed create, raw reads for stats,
 * and where the kernel counts OOM kills. With v2, pass "" as the controller.
 */
import { existsSync, readFileSync, readdirSync, rmdirSync } from "node:fs";
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
