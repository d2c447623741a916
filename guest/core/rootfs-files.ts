/**
 * Container files in the engine machine (VM mode, issue 13): docker cp, export, diff and
 * commit read or write a container's root where it is, inside the machine. The host
 * (apid through vmm, services/vmm/core/engine-files.ts) names the container and the
 * operation; this module decides which root that is, from the agent's own records and
 * layout, never from a path the host sends:
 * - stat, get, put, export: native/bin/arcbox-rootfs-cp, the same helper apid runs on
 *   the host, so the same chroot rules hold (links and `..` resolved inside the root).
 *   A running container: its /proc/<pid>/root, checked against its cgroup. A stopped
 *   one: its upper dir on the machine's disk over its layers (layer images loop-mounted
 *   and pinned while the helper runs), plus its binds and volumes.
 * - layer: the helper's tar of the upper dir as a layer (whiteouts, opaque dirs).
 * - changes: docker diff's list, computed here in JS (lib/rootfs-changes.ts).
 * - discard: the container is removed: its upper/work dirs go.
 * - size: the bytes in its upper dir (SizeRw of `docker ps -s`, inspect --size, system df).
 */
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { dirSize } from "../../lib/dir-size.ts";
import { REPO_ROOT } from "../../lib/entry.ts";
import { upperChanges } from "../../lib/rootfs-changes.ts";
import { acquireLayerImages } from "../platform/layer-images.ts";
import type { RecordStore } from "../storage/records.ts";
import { guestRootfsDirs } from "../vm/engine-layout.ts";
import { GuestError } from "./guest-error.ts";
import type { AgentLayout } from "./layout.ts";

export const ROOTFS_CP = join(REPO_ROOT, "native", "bin", "arcbox-rootfs-cp");
/** Where a helper mounts a stopped container's overlay, in a mount namespace of its own. */
const CP_MOUNTPOINT = "/run/arcbox/cp-root";

export const FilesRequestSchema = z.object({
  op: z.enum(["stat", "get", "put", "export", "changes", "layer", "discard", "size"]),
  /** The container (its record, cgroup and upper dir are the agent's). */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/),
  /** The container path (cleaned by apid; the helper resolves it inside the root). */
  path: z.string().default("/"),
  flags: z.array(z.enum(["--no-overwrite-dir-non-dir", "--copy-uidgid"])).default([]),
  /** A stopped container's overlay mounted writable (put). */
  writable: z.boolean().default(false),
  /** The image's layers (machine paths, from vmm's translation), top first. */
  lowerDirs: z.array(z.string().startsWith("/")).default([]),
  /** Volumes and binds of a stopped container (machine paths), parents first. */
  binds: z.array(z.object({ source: z.string().startsWith("/"), destination: z.string().startsWith("/"), rw: z.boolean() })).default([]),
});
export type FilesRequest = z.infer<typeof FilesRequestSchema>;

/** What a files operation runs: a helper process, or an answer computed here. */
export type FilesRun = { argv: string[]; release: () => Promise<void> } | { output: string; code: number };

const noRelease = async () => {};

export async function prepareFilesOp(req: FilesRequest, layout: AgentLayout, records: RecordStore): Promise<FilesRun> {
  const { upperDir, workDir } = guestRootfsDirs(req.id);
  if (req.op === "discard") {
    rmSync(dirname(upperDir), { recursive: true, force: true });
    return { output: "", code: 0 };
  }
  if (req.op === "size") return { output: JSON.stringify({ sizeRw: dirSize(upperDir) }), code: 0 };
  if (req.op === "layer") {
    if (!existsSync(upperDir)) mkdirSync(upperDir, { recursive: true, mode: 0o755 });
    return { argv: [ROOTFS_CP, "layer", upperDir], release: noRelease };
  }
  if (req.op === "changes") {
    const layers = await acquireLayerImages(req.lowerDirs);
    try {
      return { output: JSON.stringify(existsSync(upperDir) ? upperChanges(upperDir, layers.dirs) : []), code: 0 };
    } finally {
      await layers.release();
    }
  }
  const tail = [req.op, req.path, ...(req.op === "put" ? req.flags : [])];
  const rec = records.containers.get(req.id);
  const status = rec ? records.status(rec) : "stopped";
  if (rec && rec.pid > 0 && (status === "running" || status === "paused")) {
    return { argv: [ROOTFS_CP, "--pid", String(rec.pid), "--cgroup", layout.cgroupPath(req.id), ...tail], release: noRelease };
  }
  if (req.lowerDirs.length === 0) throw new GuestError("invalid_argument", `container ${req.id} has no layers`);
  // A container created but never started has no upper dir yet (its start keeps what a copy puts there).
  mkdirSync(upperDir, { recursive: true, mode: 0o755 });
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  mkdirSync(CP_MOUNTPOINT, { recursive: true, mode: 0o700 });
  const layers = await acquireLayerImages(req.lowerDirs);
  // Without upperdir the overlay is read-only, and safe next to other mounts of the same layers.
  const root = req.writable ? ["--lower", layers.dirs.join(":"), "--upper", upperDir, "--work", workDir] : ["--lower", [upperDir, ...layers.dirs].join(":")];
  const binds = (req.op === "export" ? [] : req.binds).filter((b) => existsSync(b.source)).flatMap((b) => ["--bind", b.source, b.destination, b.rw ? "rw" : "ro"]);
  return { argv: [ROOTFS_CP, ...root, "--mountpoint", CP_MOUNTPOINT, ...binds, ...tail], release: layers.release };
}
