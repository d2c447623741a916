/**
 * VM mode: host paths in a container request, turned into the engine machine's paths.
 * apid and imaged keep working with host paths (apid's records, imaged's snapshots);
 * the machine sees the same files through its VirtioFS shares (guest/vm/engine-layout.ts).
 * - A lower dir that is a mounted layer image (`data/imaged/mnt/<hex>`) becomes the
 *   image file itself (`layer-images/<hex>` in the share): the agent loop-mounts it.
 * - Other paths under a shared directory keep their place below its guest mount point.
 * - The upper/work pair moves onto the machine's own disk (overlayfs cannot use a
 *   VirtioFS upper dir, and the host's is never touched).
 * - Bind mounts are host paths too: they reach the machine through the share of the
 *   host's root. A path no share holds (a relative one) is refused.
 * - A named volume's data is on the machine's disk already (below GUEST_VOLUMES_ROOT,
 *   fsd's Mountpoint in VM mode): that bind source stays as it is.
 * - The network namespace path is the machine's already (netd built it there).
 */
import { basename, isAbsolute, join, relative, sep } from "node:path";
import type { CreateContainerRequest } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { ENGINE_SHARES, GUEST_VOLUMES_ROOT, guestRootfsDirs, shareHostDir } from "../../../guest/vm/engine-layout.ts";
import { MachineError } from "./machine-error.ts";

export class EnginePaths {
  private readonly shares: { hostDir: string; guestDir: string }[];
  private readonly imagedMounts: string;
  private readonly imagedGuest: string;

  constructor(homeRoot: string) {
    this.shares = ENGINE_SHARES.map((s) => ({ hostDir: shareHostDir(s, homeRoot), guestDir: s.guestDir }));
    this.imagedMounts = join(homeRoot, "data", "imaged", "mnt");
    this.imagedGuest = ENGINE_SHARES[0].guestDir;
  }

  /** The guest path of a host file in a share; undefined when no share holds it. */
  guestPath(hostPath: string): string | undefined {
    if (!isAbsolute(hostPath)) return undefined;
    for (const s of this.shares) {
      const rel = relative(s.hostDir, hostPath);
      if (rel === "" || (!rel.startsWith("..") && !rel.startsWith(sep) && rel !== "..")) return rel ? join(s.guestDir, rel) : s.guestDir;
    }
    return undefined;
  }

  /** A bind source in the machine: a volume's own path there, or a host path through a share. */
  bindSource(source: string): string | undefined {
    const rel = relative(GUEST_VOLUMES_ROOT, source);
    if (isAbsolute(source) && rel && !rel.startsWith("..") && !isAbsolute(rel)) return source;
    return this.guestPath(source);
  }

  private must(hostPath: string, what: string): string {
    if (!hostPath) return hostPath;
    const g = this.guestPath(hostPath);
    if (g === undefined) throw new MachineError("invalid_argument", `${what} ${hostPath} is not a host path the engine machine can see`);
    return g;
  }

  private layer(hostDir: string): string {
    if (relative(this.imagedMounts, hostDir) === basename(hostDir)) return join(this.imagedGuest, "layer-images", basename(hostDir));
    return this.must(hostDir, "layer");
  }

  /** A container's layer dirs as the machine sees them. */
  lowerDirs(hostDirs: string[]): string[] {
    return hostDirs.map((d) => this.layer(d));
  }

  /** The request as the engine machine's agent must see it. */
  translateCreate(req: CreateContainerRequest): CreateContainerRequest {
    const out = { ...req };
    if (req.rootfs) {
      const dirs = req.rootfs.upperDir ? guestRootfsDirs(req.id) : { upperDir: "", workDir: "" };
      out.rootfs = { ...req.rootfs, lowerDirs: req.rootfs.lowerDirs.map((d) => this.layer(d)), ...dirs };
    }
    out.mounts = req.mounts.map((m) => {
      if (m.type !== "bind") return m;
      const source = this.bindSource(m.source);
      if (source === undefined) throw new MachineError("invalid_argument", `bind mount source ${m.source} is not a host path the engine machine can see`);
      return { ...m, source };
    });
    out.hostsPath = this.must(req.hostsPath, "hosts file");
    out.resolvConfPath = this.must(req.resolvConfPath, "resolv.conf");
    out.hostnamePath = this.must(req.hostnamePath, "hostname file");
    out.logPath = this.must(req.logPath, "log file");
    // netnsPath stays: netd made the namespace in the machine (/run/netns/<name> there too).
    return out;
  }
}
