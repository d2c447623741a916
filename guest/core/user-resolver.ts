/**
 * Resolves Docker's `User` ("uid", "uid:gid", "name", "name:group") against the
 * container's own /etc/passwd and /etc/group, as Docker does.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { GuestError } from "./guest-error.ts";

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function readLines(path: string): string[][] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

// A rootfs's /etc files may be symlinks into the rootfs; we only read regular paths under it.
const passwd = (rootfs: string): PasswdEntry[] => readLines(join(rootfs, "etc/passwd")).map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] ?? "/" }));
const groups = (rootfs: string): GroupEntry[] => readLines(join(rootfs, "etc/group")).map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? "").split(",").filter(Boolean) }));

const isNumeric = (s: string) => /^\d+$/.test(s);

export function resolveUser(rootfs: string, spec: string): ResolvedUser {
  const [userPart = "", groupPart] = spec.split(":", 2);
  const users = passwd(rootfs);
  let entry: PasswdEntry | undefined;
  let uid: number;
  if (userPart === "") {
    uid = 0;
    entry = users.find((u) => u.uid === 0);
  } else if (isNumeric(userPart)) {
    uid = Number(userPart);
    entry = users.find((u) => u.uid === uid);
  } else {
    entry = users.find((u) => u.name === userPart);
    if (!entry) throw new GuestError("invalid_argument", `unable to find user ${userPart}: no matching entries in passwd file`);
    uid = entry.uid;
  }
  const allGroups = groups(rootfs);
  let gid = entry?.gid ?? 0;
  if (groupPart !== undefined && groupPart !== "") {
    if (isNumeric(groupPart)) gid = Number(groupPart);
    else {
      const g = allGroups.find((x) => x.name === groupPart);
      if (!g) throw new GuestError("invalid_argument", `unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }
  // Supplementary groups come from /etc/group membership, only when no group was forced.
  const additionalGids = entry && groupPart === undefined ? allGroups.filter((g) => g.members.includes(entry.name) && g.gid !== gid).map((g) => g.gid) : [];
  return { uid, gid, additionalGids, home: entry?.home ?? "/" };
}

/**
 * Docker's GroupAdd: each entry a gid or a group name from the container's /etc/group
 * (dockerd resolves them the same way); added to the user's supplementary groups.
 */
export function resolveGroupAdd(rootfs: string, names: string[]): number[] {
  if (names.length === 0) return [];
  const all = groups(rootfs);
  return names.map((n) => {
    if (isNumeric(n)) return Number(n);
    const g = all.find((x) => x.name === n);
    if (!g) throw new GuestError("invalid_argument", `Unable to find group ${n}: no matching entries in group file`);
    return g.gid;
  });
}
