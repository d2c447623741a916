/**
 * Container roots from layer images (VM mode, issue 13): a lower dir that is a regular
 * file is a squashfs layer image (shared from the host's imaged over VirtioFS); it is
 * loop-mounted read-only once under GUEST_LAYER_MOUNTS and shared by every container
 * that uses it. A layer no overlay lists any more stays mounted for LAYER_IDLE_MS (the
 * next `docker run --rm` of the image finds it mounted), and goes at once when its
 * image file is gone (docker rmi). The count is the kernel's mount table itself
 * (overlay mounts' lowerdir options), so an agent restart needs no bookkeeping to get
 * it right. A layer a create has mounted but not yet listed
 * in its overlay is pinned meanwhile: the release after another container's delete
 * must not take it away in between. On the Linux host lower dirs are directories
 * (imaged mounted them) and this changes nothing.
 */
import { mkdirSync, readFileSync, rmdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { RootfsSpec } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { GuestError } from "../core/guest-error.ts";
import { GUEST_LAYER_MOUNTS } from "../vm/engine-layout.ts";
import { ensureModules } from "./kernel-modules.ts";
import { isMounted, mountOverlay } from "./overlay.ts";
import type { PhaseTimer } from "./phase-trace.ts";
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
    // In use again: its idle release is off until its next last user goes.
    clearTimeout(idleTimers.get(target));
    idleTimers.delete(target);
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
export async function mountRootfs(spec: RootfsSpec, target: string, layersRoot = GUEST_LAYER_MOUNTS, phases?: PhaseTimer): Promise<void> {
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
    // In a machine the upper/work pair is the agent's own (on the machine's disk). The
    // upper dir's mode is the container's `/` (0755, as imaged makes it on the host: a
    // 0700 root denies every non-root user even /bin); its parent keeps others out.
    phases?.mark("layers");
    if (spec.upperDir) {
      mkdirSync(dirname(spec.upperDir), { recursive: true, mode: 0o700 });
      mkdirSync(spec.upperDir, { recursive: true, mode: 0o755 });
    }
    if (spec.workDir) mkdirSync(spec.workDir, { recursive: true, mode: 0o700 });
    await mountOverlay({ ...spec, lowerDirs }, target);
    phases?.mark("overlay");
  } finally {
    for (const p of pins) unpin(p);
  }
}

/**
 * The lower dirs as directories, loop-mounting layer images as needed, for a process
 * that mounts its own overlay of them (a files operation, guest/core/rootfs-files.ts):
 * they stay pinned until `release`, which also unmounts what nothing uses any more.
 */
export async function acquireLayerImages(lowerDirs: string[], layersRoot = GUEST_LAYER_MOUNTS): Promise<{ dirs: string[]; release: () => Promise<void> }> {
  const pins: string[] = [];
  const release = async () => {
    for (const p of pins.splice(0)) unpin(p);
    await releaseUnusedLayers(layersRoot).catch(() => {});
  };
  try {
    const dirs: string[] = [];
    for (const d of lowerDirs) {
      if (!isFile(d)) {
        dirs.push(d);
        continue;
      }
      const layer = join(layersRoot, basename(d));
      pin(layer);
      pins.push(layer);
      dirs.push(await mountLayerImage(d, layer));
    }
    return { dirs, release };
  } catch (err) {
    await release();
    throw err;
  }
}

/** Lower dirs of every overlay mounted now (from the super options in mountinfo). */
function lowerDirsInUse(mountinfo: string[]): Set<string> {
  const used = new Set<string>();
  for (const line of mountinfo) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const [fstype, , options] = line.slice(sep + 3).split(" ");
    if (fstype !== "overlay" || !options) continue;
    const lower = options.split(",").find((o) => o.startsWith("lowerdir="));
    for (const d of lower?.slice("lowerdir=".length).split(":") ?? []) used.add(d.replace(/\\134/g, "\\"));
  }
  return used;
}

/** How long a layer stays mounted after its last container went (docker run --rm reuses it). */
export const LAYER_IDLE_MS = 10 * 60_000;

/** The image file behind a layer mount's loop device ("" when unknown). */
function backingFile(device: string): string {
  const loop = /^\/dev\/(loop\d+)$/.exec(device)?.[1];
  if (!loop) return "";
  try {
    return readFileSync(`/sys/block/${loop}/loop/backing_file`, "utf8").trim();
  } catch {
    return "";
  }
}

/** Layer mounts under `layersRoot` that no overlay lists and no create is about to. */
function unusedLayerMounts(layersRoot: string): { target: string; image: string }[] {
  const info = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  const mounted = info
    .map((l) => ({ target: l.split(" ")[4], device: l.slice(l.indexOf(" - ") + 3).split(" ")[1] ?? "" }))
    .filter((m): m is { target: string; device: string } => !!m.target && m.target.startsWith(`${layersRoot}/`));
  if (mounted.length === 0) return [];
  const used = lowerDirsInUse(info);
  return mounted.filter((m) => !used.has(m.target) && !pinned.has(m.target)).map((m) => ({ target: m.target, image: backingFile(m.device) }));
}

async function unmountLayer(target: string): Promise<void> {
  clearTimeout(idleTimers.get(target));
  idleTimers.delete(target);
  // -d frees the loop device too.
  await mustRun([toolPath("umount"), "-d", target], `unmounting layer ${basename(target)}`).catch(() => {});
  try {
    rmdirSync(target);
  } catch {}
}

/** One timer per unused layer: its release once it has been idle for the whole period. */
const idleTimers = new Map<string, Timer>();

/**
 * Releases layer mounts (under `layersRoot`) no overlay uses and no create is about to:
 * at once when the host removed their layer image (`removed`: diff ID hexes, from
 * docker rmi / image prune), when their image file is gone, or when `idleMs` is 0; else
 * after `idleMs` without a user, by a timer armed now and checked again when it fires
 * (a create that mounted the layer meanwhile keeps it). Event driven: runs after each
 * container delete and when the host says images went away. Returns the layer mounts
 * it unmounted now.
 */
export function releaseUnusedLayers(layersRoot = GUEST_LAYER_MOUNTS, idleMs = LAYER_IDLE_MS, removed: ReadonlySet<string> = new Set()): Promise<string[]> {
  return serial(async () => {
    const released: string[] = [];
    for (const { target, image } of unusedLayerMounts(layersRoot)) {
      // The host's word first: through the share a removed file may still look present
      // for the name cache's second, so a stat alone could miss it.
      if (idleMs <= 0 || removed.has(basename(target)) || (image && !isFile(image))) {
        await unmountLayer(target);
        released.push(target);
        continue;
      }
      if (idleTimers.has(target)) continue;
      const timer = setTimeout(() => {
        idleTimers.delete(target);
        void serial(async () => {
          if (unusedLayerMounts(layersRoot).some((m) => m.target === target)) await unmountLayer(target);
        });
      }, idleMs);
      timer.unref();
      idleTimers.set(target, timer);
    }
    return released;
  });
}
