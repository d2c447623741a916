/**
 * What a daemon on a test home left on the host: mounts under the home, processes tied
 * to it other than the daemon's own services, veths/bridges and network namespaces
 * carrying the home's tag, cgroups of given containers, and per-container state dirs
 * (runc state, vmm's meta dir, imaged's upper/work dirs). A suite calls it after
 * removing its containers and expects every list to be empty.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface Leaks {
  mounts: string[];
  /** "pid cmdline" of shims, runc and other non-service processes tied to the home. */
  processes: string[];
  /** veths of the home (bridges are the networks' own and not counted). */
  veths: string[];
  netns: string[];
  cgroups: string[];
  /** Runtime and snapshot state directories of the given containers. */
  stateDirs: string[];
}

/** The 6-hex tag netd puts in every kernel object name of a home (services/netd/core/names.ts). */
export const homeTag = (home: string) => createHash("sha256").update(home).digest("hex").slice(0, 6);

function mountsUnder(home: string): string[] {
  return readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && m.startsWith(`${home}/`));
}

/** The daemon's own processes (supervisor, services, guest agent, CLI) are Bun; shims and runc are not. */
const isBun = (cmd: string) => /(^|\/)bun(\.exe)?$/.test(cmd.split(" ")[0] ?? "");

function processesOf(home: string, ids: string[]): string[] {
  const out: string[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let cmd: string;
    let cgroup = "";
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
      cgroup = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    } catch {
      continue;
    }
    // Shims carry the home in their arguments; container processes (runc init, the
    // container's own) sit in a cgroup named after the container.
    const tied = (cmd.includes(home) && !isBun(cmd)) || ids.some((id) => cgroup.includes(`/arcbox/${id}`));
    if (tied) out.push(`${pid} ${cmd}`);
  }
  return out;
}

function interfaces(prefix: string): string[] {
  try {
    return readdirSync("/sys/class/net").filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}

function cgroupsOf(ids: string[]): string[] {
  const root = "/sys/fs/cgroup";
  const controllers = existsSync(join(root, "cgroup.controllers")) ? [""] : readdirSync(root);
  const out: string[] = [];
  for (const c of controllers) for (const id of ids) if (existsSync(join(root, c, "arcbox", id))) out.push(join(root, c, "arcbox", id));
  return out;
}

export function findLeaks(home: string, containerIds: string[] = []): Leaks {
  const tag = homeTag(home);
  let netns: string[] = [];
  try {
    netns = readdirSync("/run/netns").filter((n) => n.startsWith(`arcbox-${tag}-`));
  } catch {}
  const stateDirs = containerIds.flatMap((id) =>
    [
      join(home, "data", "vmm", "host", "containers", id),
      join(home, "data", "vmm", "host", "runc", id),
      join(home, "data", "imaged", "containers", id),
      join(home, "data", "apid", "containers", id),
    ].filter((p) => existsSync(p)),
  );
  return {
    mounts: mountsUnder(home),
    processes: processesOf(home, containerIds),
    veths: interfaces(`ab${tag}v`),
    netns,
    cgroups: cgroupsOf(containerIds),
    stateDirs,
  };
}

export const NO_LEAKS: Leaks = { mounts: [], processes: [], veths: [], netns: [], cgroups: [], stateDirs: [] };
