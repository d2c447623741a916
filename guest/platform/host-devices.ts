/**
 * The host's device nodes, for privileged containers (Docker gives them every device
 * under /dev, as OCI linux.devices entries that runc recreates in the container).
 */
import { readdirSync, statSync, type Dirent, type Stats } from "node:fs";
import { join } from "node:path";
import { GuestError } from "../core/guest-error.ts";

export interface OciDevice {
  path: string;
  type: "c" | "b";
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

// Mounted by the runtime itself, or per-process views that must not be copied.
const SKIP = new Set(["/dev/pts", "/dev/shm", "/dev/mqueue", "/dev/fd", "/dev/console", "/dev/ptmx"]);

// Linux's dev_t encoding (glibc gnu_dev_major / gnu_dev_minor).
const major = (rdev: number) => Number(((BigInt(rdev) >> 8n) & 0xfffn) | ((BigInt(rdev) >> 32n) & ~0xfffn));
const minor = (rdev: number) => Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));

export function hostDevices(dir = "/dev"): OciDevice[] {
  const out: OciDevice[] = [];
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (SKIP.has(path)) continue;
    if (e.isDirectory()) out.push(...hostDevices(path));
    else if (e.isCharacterDevice() || e.isBlockDevice()) {
      const st = statSync(path);
      out.push({ path, type: e.isCharacterDevice() ? "c" : "b", major: major(st.rdev), minor: minor(st.rdev), fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid });
    }
  }
  return out;
}

/**
 * Docker's `--device host[:container[:perms]]`: the node (or every node under a
 * directory) at its container path, with a cgroup rule allowing it.
 */
export function mappedDevices(hostPath: string, containerPath: string): OciDevice[] {
  let st: Stats;
  try {
    st = statSync(hostPath);
  } catch (err) {
    throw new GuestError("invalid_argument", `error gathering device information while adding custom device "${hostPath}": ${(err as Error).message}`);
  }
  if (st.isDirectory()) return hostDevices(hostPath).map((dev) => ({ ...dev, path: join(containerPath, dev.path.slice(hostPath.replace(/\/+$/, "").length)) }));
  if (!st.isCharacterDevice() && !st.isBlockDevice()) throw new GuestError("invalid_argument", `error gathering device information while adding custom device "${hostPath}": not a device node`);
  return [{ path: containerPath, type: st.isCharacterDevice() ? "c" : "b", major: major(st.rdev), minor: minor(st.rdev), fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid }];
}
