/**
 * cgroup v1 files of a container (path /arcbox/<id> in each hierarchy): removal of
 * leftovers after a failed create, and raw reads for stats. No cgroup v2 support yet.
 */
import { readFileSync, readdirSync, rmdirSync } from "node:fs";
import { join } from "node:path";

const ROOT = "/sys/fs/cgroup";

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
