/**
 * Builds an OCI runtime spec (runc's config.json) from a CreateContainerRequest, with
 * Docker Engine's defaults: capability set, masked and read-only paths, default mounts
 * and device rules. Never sets rlimits (raising them needs CAP_SYS_RESOURCE).
 */
import type { CreateContainerRequest, Mount, ProcessSpec, Resources } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { existsSync } from "node:fs";
import { hostDevices, mappedDevices } from "../platform/host-devices.ts";
import { resolveCapabilities } from "./capabilities.ts";
import { GuestError } from "./guest-error.ts";
import { ociRlimits } from "./rlimits.ts";
import { defaultSeccomp, seccompFromProfile } from "./seccomp.ts";
import { resolveGroupAdd, resolveUser } from "./user-resolver.ts";

/** Whether the kernel accounts swap per cgroup (memory.memsw.*): runc rejects a swap limit otherwise. */
const SWAP_ACCOUNTING = existsSync("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");

export const DOCKER_INIT_PATH = "/sbin/docker-init";
const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const MASKED_PATHS = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];
const READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

// Docker's default device cgroup rules: deny all, then the usual character devices.
const c = (major: number, minor: number, access = "rwm") => ({ allow: true, type: "c", major, minor, access });
const DEFAULT_DEVICE_RULES = [
  { allow: false, access: "rwm" },
  c(1, 5),
  c(1, 3),
  c(1, 9),
  c(1, 8),
  c(5, 0),
  c(5, 1),
  c(1, 7), // zero null urandom random tty console full
  { allow: true, type: "c", major: 136, access: "rwm" }, // /dev/pts/*
  c(5, 2), // /dev/ptmx
  c(10, 200), // /dev/net/tun
  { allow: false, type: "c", major: 10, minor: 229, access: "rwm" },
];

type OciMount = { destination: string; type: string; source: string; options?: string[] };

function defaultMounts(readonlySysfs: boolean): OciMount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", readonlySysfs ? "ro" : "rw"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", readonlySysfs ? "ro" : "rw"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"] },
  ];
}

function userMount(m: Mount): OciMount {
  const options = [...m.options];
  // A bind needs "bind" (or "rbind") in its options for runc to bind rather than mount a device.
  if (m.type === "bind" && !options.some((o) => o === "bind" || o === "rbind")) options.push("rbind");
  return { destination: m.destination, type: m.type || "bind", source: m.source || m.type, options };
}

function fileBind(destination: string, source: string, readonly = false): OciMount {
  return { destination, type: "bind", source, options: ["rbind", "rprivate", readonly ? "ro" : "rw"] };
}

/** Docker's env rules: PATH when missing, HOSTNAME, HOME from passwd, TERM for a TTY. */
export function processEnv(env: string[], extra: { hostname?: string; home: string; tty: boolean }): string[] {
  const has = (k: string) => env.some((e) => e.startsWith(`${k}=`));
  const out = [...env];
  if (!has("PATH")) out.unshift(DEFAULT_PATH);
  if (extra.hostname && !has("HOSTNAME")) out.push(`HOSTNAME=${extra.hostname}`);
  if (!has("HOME")) out.push(`HOME=${extra.home}`);
  if (extra.tty && !has("TERM")) out.push("TERM=xterm");
  return out;
}

/** The `process` object of a spec (also the process.json of `runc exec`). */
export function ociProcess(rootfs: string, p: ProcessSpec, opts: { hostname?: string; init?: boolean; baseEnv?: string[] }) {
  const user = resolveUser(rootfs, p.user);
  const additionalGids = [...new Set([...user.additionalGids, ...resolveGroupAdd(rootfs, p.groupAdd)])];
  const rlimits = ociRlimits(p.rlimits);
  const caps = resolveCapabilities(p.capAdd, p.capDrop, p.privileged);
  const env = mergeEnv(opts.baseEnv ?? [], p.env);
  const args = opts.init ? [DOCKER_INIT_PATH, "--", ...p.args] : [...p.args];
  return {
    terminal: p.tty,
    ...(p.tty && p.ttyHeight && p.ttyWidth ? { consoleSize: { height: p.ttyHeight, width: p.ttyWidth } } : {}),
    user: { uid: user.uid, gid: user.gid, ...(additionalGids.length ? { additionalGids } : {}) },
    args,
    env: processEnv(env, { hostname: opts.hostname, home: user.home, tty: p.tty }),
    cwd: p.cwd || "/",
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    noNewPrivileges: p.noNewPrivileges,
    ...(rlimits.length ? { rlimits } : {}),
  };
}

/** Later entries win, by variable name (exec env over the container's). */
export function mergeEnv(base: string[], over: string[]): string[] {
  const byName = new Map<string, string>();
  for (const e of [...base, ...over]) byName.set(e.split("=", 1)[0]!, e);
  return [...byName.values()];
}

/** runc's LinuxResources from ours (also the body of `runc update -r`). */
export function ociResources(r: Resources | undefined, privileged = false, opts: { defaultSwap?: boolean } = {}) {
  const out: Record<string, unknown> = { devices: privileged ? [{ allow: true, access: "rwm" }] : DEFAULT_DEVICE_RULES };
  if (!r) return out;
  const memory: Record<string, number> = {};
  if (r.memoryBytes > 0n) memory.limit = Number(r.memoryBytes);
  if (r.memorySwapBytes !== 0n) memory.swap = Number(r.memorySwapBytes);
  // Docker: a memory limit without MemorySwap allows as much swap again (swap = 2 x memory).
  else if (opts.defaultSwap && r.memoryBytes > 0n && SWAP_ACCOUNTING) memory.swap = Number(r.memoryBytes) * 2;
  if (Object.keys(memory).length) out.memory = memory;
  const cpu: Record<string, unknown> = {};
  if (r.nanoCpus > 0n) {
    cpu.period = 100000;
    cpu.quota = Math.round((Number(r.nanoCpus) * 100000) / 1e9);
  }
  if (r.cpuQuota !== 0n) cpu.quota = Number(r.cpuQuota);
  if (r.cpuPeriod > 0n) cpu.period = Number(r.cpuPeriod);
  if (r.cpuShares > 0n) cpu.shares = Number(r.cpuShares);
  if (r.cpusetCpus) cpu.cpus = r.cpusetCpus;
  if (Object.keys(cpu).length) out.cpu = cpu;
  if (r.pidsLimit !== 0n) out.pids = { limit: Number(r.pidsLimit) };
  return out;
}

/** A DeviceCgroupRules entry ("c 1:3 rwm", "a *:* m"; checked by apid) as an OCI device rule. */
function deviceRule(rule: string) {
  const [, type, maj, min, access] = /^([abc]) (\d+|\*):(\d+|\*) ([rwm]{1,3})$/.exec(rule) ?? [];
  if (!type) throw new GuestError("invalid_argument", `invalid device cgroup format '${rule}'`);
  return { allow: true, type, ...(maj !== "*" ? { major: Number(maj) } : {}), ...(min !== "*" ? { minor: Number(min) } : {}), access };
}

/** Sorts mounts so a parent directory is mounted before anything beneath it. */
function byDepth(a: OciMount, b: OciMount) {
  return a.destination.split("/").length - b.destination.split("/").length;
}

export interface SpecContext {
  /** The mounted overlay (used to resolve users). */
  rootfs: string;
  cgroupsPath: string;
  /** Path of a network namespace to join, resolved from netns_path / join_netns_of. */
  netnsPath?: string;
  /** Host path of the init binary (tini-static). */
  initBinary: string;
  /** PidMode/IpcMode/UTSMode resolved: "host", or the path of a namespace to join. */
  shared?: { pid?: string; ipc?: string; uts?: string };
  /**
   * A cgroup namespace of its own: Docker's default on a cgroup v2 machine (the engine
   * machine), so `/sys/fs/cgroup` is the container's cgroup (memory.max, pids.max) and
   * not the machine's root. Off on cgroup v1 (the host here), as dockerd's default.
   */
  cgroupNamespace?: boolean;
}

/** A namespace of its own, the host's (left out), or another container's (joined by path). */
function namespace(type: string, mode: string | undefined): { type: string; path?: string }[] {
  if (mode === "host") return [];
  return [mode ? { type, path: mode } : { type }];
}

export function buildOciSpec(req: CreateContainerRequest, ctx: SpecContext) {
  const p = req.process!;
  const privileged = p.privileged;
  const mounts = defaultMounts(!privileged);
  const extra = req.mounts.map(userMount);
  if (req.hostsPath) extra.push(fileBind("/etc/hosts", req.hostsPath));
  if (req.resolvConfPath) extra.push(fileBind("/etc/resolv.conf", req.resolvConfPath));
  if (req.hostnamePath) extra.push(fileBind("/etc/hostname", req.hostnamePath));
  if (req.init) extra.push(fileBind(DOCKER_INIT_PATH, ctx.initBinary, true));
  // dockerd: the host's IPC namespace comes with the host's /dev/shm. (Another container's
  // /dev/shm lives in that container's mount namespace and cannot be bound: not shared.)
  if (ctx.shared?.ipc === "host") extra.push({ destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "rprivate"] });
  const later = new Set<string>();
  for (let i = extra.length - 1; i >= 0; i--) {
    // The last /dev/shm wins (the shared one over apid's default tmpfs).
    if (extra[i]!.destination === "/dev/shm" && later.has("/dev/shm")) extra.splice(i, 1);
    else later.add(extra[i]!.destination);
  }
  // A user mount replaces a default one at the same place (e.g. a bigger /dev/shm).
  const userDests = new Set(extra.map((m) => m.destination));
  const allMounts = [...mounts.filter((m) => !userDests.has(m.destination)), ...extra.sort(byDepth)];

  const namespaces: { type: string; path?: string }[] = [...namespace("pid", ctx.shared?.pid), ...namespace("ipc", ctx.shared?.ipc), { type: "mount" }];
  // Docker: host networking implies the host's UTS namespace.
  const utsMode = req.hostNetwork ? "host" : ctx.shared?.uts;
  namespaces.push(...namespace("uts", utsMode));
  if (!req.hostNetwork) namespaces.push(ctx.netnsPath ? { type: "network", path: ctx.netnsPath } : { type: "network" });
  if (ctx.cgroupNamespace) namespaces.push({ type: "cgroup" });
  // A hostname is set only in a UTS namespace of the container's own.
  const hostname = utsMode ? undefined : req.hostname || undefined;
  const process = ociProcess(ctx.rootfs, p, { hostname, init: req.init });
  const resources = ociResources(req.resources, privileged, { defaultSwap: true });
  const devices = privileged ? hostDevices() : req.devices.flatMap((m) => mappedDevices(m.pathOnHost, m.pathInContainer || m.pathOnHost));
  if (!privileged && (devices.length || req.deviceCgroupRules.length)) {
    const perms = (d: { path: string }) => req.devices.find((m) => d.path.startsWith(m.pathInContainer || m.pathOnHost))?.cgroupPermissions || "rwm";
    resources.devices = [
      ...(resources.devices as object[]),
      ...devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: perms(d) })),
      ...req.deviceCgroupRules.map(deviceRule),
    ];
  }
  if (req.memorySwappiness !== undefined) resources.memory = { ...(resources.memory as object | undefined), swappiness: Number(req.memorySwappiness) };
  const seccomp =
    privileged || req.seccompProfile === "unconfined"
      ? undefined
      : req.seccompProfile
        ? seccompFromProfile(req.seccompProfile, process.capabilities.bounding)
        : defaultSeccomp(process.capabilities.bounding);
  return {
    ociVersion: "1.0.2-dev",
    process,
    root: { path: "rootfs", readonly: req.rootfs?.readonly ?? false },
    ...(hostname ? { hostname } : {}),
    ...(req.domainname && !utsMode ? { domainname: req.domainname } : {}),
    mounts: allMounts,
    annotations: { ...req.annotations },
    linux: {
      namespaces,
      cgroupsPath: ctx.cgroupsPath,
      resources,
      ...(Object.keys(req.sysctls).length ? { sysctl: { ...req.sysctls } } : {}),
      ...(devices.length ? { devices } : {}),
      ...(privileged ? {} : { maskedPaths: MASKED_PATHS, readonlyPaths: READONLY_PATHS }),
      ...(seccomp ? { seccomp } : {}),
    },
  };
}
