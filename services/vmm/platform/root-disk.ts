/**
 * A machine's persistent root disk: a sparse raw ext4 image made from an OCI image's
 * layers. The layers are merged by an overlay mount in a private mount namespace
 * (`unshare -m`: the mount never shows on the host and goes away with the process),
 * and `mkfs.ext4 -d` copies the merged tree into the new filesystem. The overlay's
 * upper dir also adds the mount points the guest needs (/opt/arcbox for the tools image).
 */
import { mkdirSync, rmSync } from "node:fs";
import { MachineError } from "../core/machine-error.ts";

export interface RootfsLayers {
  /** Directory the relative lower dirs are relative to (keeps mount options short). */
  layersBase: string;
  /** Lower dirs relative to layersBase, uppermost first. */
  relativeLowerDirs: string[];
  upperDir: string;
  workDir: string;
}

/** Mount points the guest's /init relies on, created in the image's tree. */
const GUEST_DIRS = ["opt/arcbox", "proc", "sys", "dev", "run", "tmp"];

export async function buildRootDisk(layers: RootfsLayers, diskPath: string, sizeGib: number, mountPoint: string): Promise<void> {
  if (layers.relativeLowerDirs.length === 0) throw new MachineError("invalid_argument", "the image has no layers");
  for (const d of [...layers.relativeLowerDirs, layers.upperDir, layers.workDir, mountPoint]) {
    // overlayfs separates options with ',' and lower dirs with ':'.
    if (/[,:]/.test(d)) throw new MachineError("internal", `path contains ',' or ':': ${d}`);
  }
  mkdirSync(mountPoint, { recursive: true });
  const options = `lowerdir=${layers.relativeLowerDirs.join(":")},upperdir=${layers.upperDir},workdir=${layers.workDir}`;
  // The script runs in its own mount namespace; "$@" carries every path as an argument.
  const script = [
    "set -e",
    'mnt="$1"; opts="$2"; disk="$3"; size="$4"; shift 4',
    'mount -t overlay overlay -o "$opts" "$mnt"',
    'for d in "$@"; do mkdir -p "$mnt/$d"; done',
    // ^metadata_csum_seed etc. stay default; -E root_owner keeps / owned by root.
    'exec mkfs.ext4 -q -F -L arcbox-root -E root_owner=0:0 -d "$mnt" "$disk" "$size"',
  ].join("\n");
  const proc = Bun.spawn(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", mountPoint, options, diskPath, `${sizeGib}G`, ...GUEST_DIRS], {
    cwd: layers.layersBase,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  rmSync(mountPoint, { recursive: true, force: true });
  if (code !== 0) {
    rmSync(diskPath, { force: true });
    const msg = stderr.trim().split("\n").slice(-2).join("; ");
    if (/Could not allocate|No space left|too small|Not enough space/i.test(msg)) {
      throw new MachineError("invalid_argument", `the image does not fit on a ${sizeGib} GiB disk: ${msg}`);
    }
    throw new MachineError("internal", `cannot make the machine's disk: ${msg || `exit code ${code}`}`);
  }
}
