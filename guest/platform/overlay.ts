/**
 * The container root filesystem: an overlayfs over imaged's snapshot dirs, mounted
 * and unmounted by spawning mount(8)/umount(8) (never from inside the Bun process).
 */
import { readFileSync } from "node:fs";
import type { RootfsSpec } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { GuestError } from "../core/guest-error.ts";
import { mustRun, runTool, toolPath } from "./run-tool.ts";

export function overlayOptions(spec: RootfsSpec): string {
  if (spec.lowerDirs.length === 0) throw new GuestError("invalid_argument", "rootfs needs at least one lower dir");
  for (const d of [...spec.lowerDirs, spec.upperDir, spec.workDir]) {
    // overlayfs separates options with ',' and lower dirs with ':'.
    if (/[,:]/.test(d)) throw new GuestError("invalid_argument", `rootfs path contains ',' or ':': ${d}`);
  }
  if (!spec.upperDir || !spec.workDir) return `lowerdir=${spec.lowerDirs.join(":")}`;
  return `lowerdir=${spec.lowerDirs.join(":")},upperdir=${spec.upperDir},workdir=${spec.workDir}`;
}

export async function mountOverlay(spec: RootfsSpec, target: string): Promise<void> {
  await mustRun([toolPath("mount"), "-t", "overlay", "overlay", "-o", overlayOptions(spec), target], "mounting the container rootfs");
}

export function isMounted(target: string): boolean {
  const text = readFileSync("/proc/self/mountinfo", "utf8");
  for (const line of text.split("\n")) if (line.split(" ")[4] === target) return true;
  return false;
}

/** Unmounts if mounted; a busy mount is detached lazily rather than left behind. */
export async function unmountIfMounted(target: string): Promise<void> {
  if (!isMounted(target)) return;
  const r = await runTool([toolPath("umount"), target]);
  if (r.code !== 0 && isMounted(target)) await mustRun([toolPath("umount"), "-l", target], "unmounting the container rootfs");
}
