/**
 * VM mode: named volumes' data on the engine machine's disk (issue 13). fsd keeps the
 * records on the host (names, labels, options, users) and asks for the file side through
 * vmm's MachineService.VolumeOp: make a volume's data dir and fill it from the image on
 * first use, measure, remove. The agent does only that, and only below its volume root:
 * a name that is not a plain volume name is refused, so no request reaches another path.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { dirSize } from "../../lib/dir-size.ts";
import { copyUpArgv } from "../../lib/volume-copy-up.ts";
import { GuestError } from "../core/guest-error.ts";
import { ensureModules } from "../platform/kernel-modules.ts";
import { acquireLayerImages } from "../platform/layer-images.ts";
import { mustRun, toolPath } from "../platform/run-tool.ts";
import { GUEST_VOLUMES_ROOT } from "./engine-layout.ts";

/** Docker's local volume names: no "/", never "." or "..". */
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export interface VolumeOpInput {
  op: string;
  names: string[];
  /** The image's layers as the machine sees them (dirs, or layer image files). */
  lowerDirs: string[];
  target: string;
}

function volumeDir(name: string, root: string): string {
  if (!NAME_RE.test(name)) throw new GuestError("invalid_argument", `${JSON.stringify(name)} is not a volume name`);
  return join(root, name);
}

/** One op at a time: a remove never runs under a copy into the same volume. */
let chain: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = chain.then(fn, fn);
  chain = next.catch(() => {});
  return next;
}

export async function runVolumeOp(req: VolumeOpInput, root = GUEST_VOLUMES_ROOT): Promise<{ sizes: bigint[]; path: string }> {
  if (req.op === "sizes") {
    // Names are checked before any is measured.
    const dirs = req.names.map((n) => join(volumeDir(n, root), "_data"));
    return { sizes: dirs.map((d) => BigInt(existsSync(d) ? dirSize(d) : -1)), path: "" };
  }
  if (req.op !== "prepare" && req.op !== "remove") throw new GuestError("invalid_argument", `unknown volume op ${JSON.stringify(req.op)}`);
  if (req.names.length !== 1) throw new GuestError("invalid_argument", `volume op ${req.op} takes one name`);
  const dir = volumeDir(req.names[0]!, root);
  return serial(async () => {
    if (req.op === "remove") {
      rmSync(dir, { recursive: true, force: true });
      return { sizes: [], path: "" };
    }
    const data = join(dir, "_data");
    mkdirSync(root, { recursive: true, mode: 0o701 });
    mkdirSync(data, { recursive: true, mode: 0o755 });
    if (req.lowerDirs.length && req.target && readdirSync(data).length === 0) await populate(req.lowerDirs, req.target, data, dir);
    return { sizes: [], path: data };
  });
}

/**
 * Copies the image's content at `target` into the empty `dest` with owners and modes,
 * from the layer images, resolving `target` inside the image's root
 * (lib/volume-copy-up.ts).
 */
async function populate(lowerDirs: string[], target: string, dest: string, scratchDir: string): Promise<void> {
  if (target.split("/").includes("..")) throw new GuestError("invalid_argument", `invalid mount target ${target}`);
  const busybox = toolPath("busybox");
  // Early after a boot, loop (layer images) and overlay may still be loading (stage 2).
  await ensureModules(["loop", "overlay"]);
  const layers = await acquireLayerImages(lowerDirs);
  const scratch = mkdtempSync(join(scratchDir, ".copy-up-"));
  try {
    const argv = copyUpArgv({
      unshare: [busybox, "unshare", "-m", "--propagation", "private"],
      shell: [busybox, "sh"],
      busybox,
      // GNU cp from the tools image (scripts/build-guest.sh): busybox's drops xattrs.
      cp: toolPath("cp"),
      mount: toolPath("mount"),
      lowerDirs: layers.dirs,
      target,
      dest,
      scratch,
    });
    await mustRun(argv, "copying image content into the volume");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    await layers.release();
  }
}
