/**
 * Container roots from layer images (VM mode, issue 13): a lower dir that is a regular
 * file is a squashfs layer image (shared from the host's imaged over VirtioFS); it is
 * loop-mounted read-only once under GUEST_LAYER_MOUNTS and shared by every container
 * that uses it. A layer is unmounted when no overlay lists it any more. The count is the
 * kernel's mount table itself (overlay mounts' lowerdir options), so an agent restart
 * needs no bookkeeping to get it right. On the Linux host lower dirs are directories
 * (imaged mounted them) and this changes nothing.
 */
import { mkdirSync, readFileSync, rmdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { RootfsSpec } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { GuestError } from "../core/guest-error.ts";
import { GUEST_LAYER_MOUNTS } from "../vm/engine-layout.ts";
import { isMounted, mountOverlay } from "./overlay.ts";
import { mustRun, runTool, toolPath } from "./run-tool.ts";

/** Layer mounts and unmounts run one at a time: a mount never races the unmount of its layer. */
let chain: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = chain.then(fn, fn);
  chain = next.catch(() => {});
  return next;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

async function mountLayerImage(image: string): Promise<string> {
  const target = join(GUEST_LAYER_MOUNTS, basename(image));
  return serial(async () => {
    if (isMounted(target)) return target;
    mkdirSync(target, { recursive: true });
    const r = await runTool([toolPath("mount"), "-t", "squashfs", "-o", "ro,loop", image, target]);
    if (r.code !== 0) throw new GuestError("internal", `mounting layer image ${basename(image)}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
    return target;
  });
}

/** Mounts the container's overlay at `target`, loop-mounting its layer images first. */
export async function mountRootfs(spec: RootfsSpec, target: string): Promise<void> {
  const lowerDirs: string[] = [];
  for (const d of spec.lowerDirs) lowerDirs.push(isFile(d) ? await mountLayerImage(d) : d);
  // In a machine the upper/work pair is the agent's own (on the machine's disk).
  for (const d of [spec.upperDir, spec.workDir]) if (d) mkdirSync(d, { recursive: true, mode: 0o700 });
  await mountOverlay({ ...spec, lowerDirs }, target);
}

/** Lower dirs of every overlay mounted now (from the super options in mountinfo). */
function lowerDirsInUse(): Set<string> {
  const used = new Set<string>();
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [fstype, , options] = line.slice(sep + 3).split(" ");
    if (fstype !== "overlay" || !options) continue;
    const lower = options.split(",").find((o) => o.startsWith("lowerdir="));
    for (const d of lower?.slice("lowerdir=".length).split(":") ?? []) used.add(d.replace(/\\134/g, "\\"));
  }
  return used;
}

/** Unmounts the layer images no overlay uses any more (after a container's root went). */
export function releaseUnusedLayers(): Promise<void> {
  return serial(async () => {
    const mounted = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[4])
      .filter((m): m is string => !!m && m.startsWith(`${GUEST_LAYER_MOUNTS}/`));
    if (mounted.length === 0) return;
    const used = lowerDirsInUse();
    for (const m of mounted.filter((m) => !used.has(m))) {
      // -d frees the loop device too.
      await mustRun([toolPath("umount"), "-d", m], `unmounting layer ${basename(m)}`).catch(() => {});
      try {
        rmdirSync(m);
      } catch {}
    }
  });
}
