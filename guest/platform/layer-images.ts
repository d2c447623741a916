/**
 * Container roots from layer images (VM mode, issue 13): a lower dir that is a regular
 * file is a squashfs layer image (shared from the host's imaged over VirtioFS); it is
 * loop-mounted read-only once under GUEST_LAYER_MOUNTS and shared by every container
 * that uses it. A layer is unmounted when no overlay lists it any more. The count is the
 * kernel's mount table itself (overlay mounts' lowerdir options), so an agent restart
 * needs no bookkeeping to get it right. A layer a create has mounted but not yet listed
 * in its overlay is pinned meanwhile: the release after another container's delete
 * must not take it away in between. On the Linux host lower dirs are directories
 * (imaged mounted them) and this changes nothing.
 */
import { mkdirSync, readFileSync, rmdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { RootfsSpec } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { GuestError } from "../core/guest-error.ts";
import { GUEST_LAYER_MOUNTS } from "../vm/engine-layout.ts";
import { ensureModules } from "./kernel-modules.ts";
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

/** Layer mounts (targets) that creates in flight are about to list in their overlays, with counts. */
const pinned = new Map<string, number>();

function pin(target: string): void {
  pinned.set(target, (pinned.get(target) ?? 0) + 1);
}

function unpin(target: string): void {
  const n = (pinned.get(target) ?? 1) - 1;
  if (n > 0) pinned.set(target, n);
  else pinned.delete(target);
}

function mountLayerImage(image: string, target: string): Promise<string> {
  return serial(async () => {
    if (isMounted(target)) return target;
    mkdirSync(target, { recursive: true });
    const r = await runTool([toolPath("mount"), "-t", "squashfs", "-o", "ro,loop", image, target]);
    if (r.code !== 0) throw new GuestError("internal", `mounting layer image ${basename(image)}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
    return target;
  });
}

/**
 * Mounts the container's overlay at `target`, loop-mounting its layer images first
 * (under `layersRoot`). Its layers stay pinned until the overlay lists them (or failed).
 */
export async function mountRootfs(spec: RootfsSpec, target: string, layersRoot = GUEST_LAYER_MOUNTS): Promise<void> {
  const pins: string[] = [];
  // In a machine: loop (layer images) and overlay may still be loading (stage 2).
  await ensureModules(["loop", "overlay"]);
  try {
    const lowerDirs: string[] = [];
    for (const d of spec.lowerDirs) {
      if (!isFile(d)) {
        lowerDirs.push(d);
        continue;
      }
      const layer = join(layersRoot, basename(d));
      pin(layer);
      pins.push(layer);
      lowerDirs.push(await mountLayerImage(d, layer));
    }
    // In a machine the upper/work pair is the agent's own (on the machine's disk).
    for (const d of [spec.upperDir, spec.workDir]) if (d) mkdirSync(d, { recursive: true, mode: 0o700 });
    await mountOverlay({ ...spec, lowerDirs }, target);
  } finally {
    for (const p of pins) unpin(p);
  }
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

/** Unmounts the layer images (under `layersRoot`) no overlay uses any more and no create is about to. */
export function releaseUnusedLayers(layersRoot = GUEST_LAYER_MOUNTS): Promise<void> {
  return serial(async () => {
    const mounted = readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[4])
      .filter((m): m is string => !!m && m.startsWith(`${layersRoot}/`));
    if (mounted.length === 0) return;
    const used = lowerDirsInUse();
    for (const m of mounted.filter((m) => !used.has(m) && !pinned.has(m))) {
      // -d frees the loop device too.
      await mustRun([toolPath("umount"), "-d", m], `unmounting layer ${basename(m)}`).catch(() => {});
      try {
        rmdirSync(m);
      } catch {}
    }
  });
}
