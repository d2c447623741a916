/**
 * `docker diff`: changes of a container's upper (writable) overlay layer against its
 * image layers. Kind: 0 modified, 1 added, 2 deleted (whiteouts and opaque dirs).
 * Pure node:fs: apid runs it on the host, the guest agent in the engine machine (VM
 * mode), where the upper dir is.
 */
import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface Change {
  Path: string;
  Kind: 0 | 1 | 2;
}

export function upperChanges(upper: string, lowers: string[]): Change[] {
  const out: Change[] = [];
  const inLower = (rel: string) => lowers.some((l) => existsBeneath(l, rel));
  const walk = (rel: string) => {
    let names: string[];
    try {
      names = readdirSync(join(upper, rel));
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(upper, path));
      // A whiteout: a 0/0 character device.
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ Path: `/${path}`, Kind: 2 });
        continue;
      }
      const existed = inLower(path);
      out.push({ Path: `/${path}`, Kind: existed ? 0 : 1 });
      if (st.isDirectory()) walk(path);
    }
  };
  walk("");
  return withoutMountpoints(out);
}

/**
 * Whether `rel` exists in the layer at `root`, following no symlink on the way. A
 * layer's link may point anywhere (`a -> /`): following it would test the host's (or
 * the engine machine's) own files, and whether `/a/x` shows as changed or added would
 * tell a container whether the host has `/x`. A dangling link itself exists.
 */
function existsBeneath(root: string, rel: string): boolean {
  const parts = rel.split("/");
  let path = root;
  for (let i = 0; i < parts.length; i++) {
    path = join(path, parts[i]!);
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) return false;
    if (i < parts.length - 1 && !st.isDirectory()) return false;
  }
  return true;
}

/** The files the runtime binds over the image's (the contents live outside the container). */
const RUNTIME_FILES = new Set(["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]);

/**
 * Docker keeps /etc/hostname, /etc/hosts and /etc/resolv.conf (and the /etc that holds
 * them) in an init layer below the container's, so `docker diff` never lists them. Here
 * runc creates their mountpoints in the writable layer: leave them out, and /etc too
 * when nothing else in it changed.
 */
function withoutMountpoints(changes: Change[]): Change[] {
  const kept = changes.filter((c) => !(RUNTIME_FILES.has(c.Path) && c.Kind !== 2));
  const etcTouched = kept.some((c) => c.Path.startsWith("/etc/"));
  return etcTouched ? kept : kept.filter((c) => c.Path !== "/etc" || c.Kind === 2);
}
