/**
 * The HostConfig options that shape a container's kernel view beyond resources:
 * shared namespaces (PidMode and IpcMode host or container:<id>, UTSMode host), GroupAdd, Sysctls, SecurityOpt,
 * Ulimits, MemorySwappiness, plus the values Docker accepts that change nothing here
 * (Runtime runc, Isolation default, VolumeDriver local). Checked with dockerd's rules
 * and wording; what cannot be honoured is refused with the reason.
 */
import { z } from "zod";
import { ContainerError } from "./container-error.ts";

const bad = (message: string) => new ContainerError("invalid_argument", message);

export const ulimitSchema = z.looseObject({ Name: z.string(), Soft: z.number().int(), Hard: z.number().int() });

export const deviceMappingSchema = z.looseObject({ PathOnHost: z.string(), PathInContainer: z.string().nullish(), CgroupPermissions: z.string().nullish() });

export const hostOptionsShape = {
  Devices: z.array(deviceMappingSchema).nullish(),
  DeviceCgroupRules: z.array(z.string()).nullish(),
  PidMode: z.string().nullish(),
  IpcMode: z.string().nullish(),
  UTSMode: z.string().nullish(),
  GroupAdd: z.array(z.string()).nullish(),
  Sysctls: z.record(z.string(), z.string()).nullish(),
  SecurityOpt: z.array(z.string()).nullish(),
  Ulimits: z.array(ulimitSchema).nullish(),
  MemorySwappiness: z.number().int().nullish(),
  Runtime: z.string().nullish(),
  Isolation: z.string().nullish(),
  VolumeDriver: z.string().nullish(),
};

type HostOptions = z.infer<z.ZodObject<typeof hostOptionsShape>> & { NetworkMode?: string | null };

/** A namespace mode: "" / "private" (own namespace), "host", or "container:<ref>" where shareable. */
function checkNamespaceMode(kind: string, mode: string | null | undefined, extra: string[] = [], shareable = true): void {
  if (!mode || mode === "host" || extra.includes(mode)) return;
  if (shareable && mode.startsWith("container:") && mode.length > "container:".length) return;
  throw bad(`invalid ${kind} mode: ${mode}`);
}

/** The container a mode shares a namespace with, if any. */
export const sharedWith = (mode: unknown): string | undefined => (typeof mode === "string" && mode.startsWith("container:") ? mode.slice("container:".length) : undefined);

/** The sysctls a container may set (the docker CLI's ValidateSysctl): those in its own namespaces. */
const IPC_SYSCTLS = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];

function checkSysctls(o: HostOptions): void {
  for (const key of Object.keys(o.Sysctls ?? {})) {
    const ipc = IPC_SYSCTLS.includes(key) || key.startsWith("fs.mqueue.");
    if (ipc) {
      if (o.IpcMode === "host") throw bad(`sysctl "${key}" not allowed in host IPC namespace`);
    } else if (key.startsWith("net.")) {
      if (o.NetworkMode === "host") throw bad(`sysctl "${key}" not allowed in host network namespace`);
    } else throw bad(`sysctl '${key}' is not allowed`);
  }
}

/** The Ulimit names Docker knows (go-units), as RLIMIT_<NAME>. */
export const RLIMITS = ["as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"];

function checkUlimits(o: HostOptions): void {
  for (const u of o.Ulimits ?? []) {
    if (!RLIMITS.includes(u.Name)) throw bad(`invalid ulimit type: ${u.Name}`);
    if (u.Soft > u.Hard) throw bad(`invalid ulimit argument: ${u.Name}=${u.Soft}:${u.Hard}: soft limit must be less than or equal to hard limit`);
  }
}

export interface SecurityOptions {
  noNewPrivileges: boolean;
  /** "" default filter, "unconfined", or a profile's JSON. */
  seccomp: string;
}

/** dockerd's parseSecurityOpt (no AppArmor or SELinux here: label=disable is all that applies). */
export function parseSecurityOpt(opts: string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false, seccomp: "" };
  for (const opt of opts ?? []) {
    if (opt === "no-new-privileges") {
      out.noNewPrivileges = true;
      continue;
    }
    const sep = opt.indexOf("=") >= 0 ? "=" : opt.indexOf(":") >= 0 ? ":" : "";
    if (!sep) throw bad(`invalid --security-opt 1: "${opt}"`);
    const key = opt.slice(0, opt.indexOf(sep));
    const value = opt.slice(opt.indexOf(sep) + 1);
    if (key === "no-new-privileges") {
      if (!["true", "false", "1", "0"].includes(value)) throw bad(`invalid --security-opt 2: "${opt}"`);
      out.noNewPrivileges = value === "true" || value === "1";
    } else if (key === "seccomp") {
      if (value !== "unconfined" && !value.trimStart().startsWith("{")) throw bad(`opening seccomp profile (${value}) failed: the docker CLI sends a profile's content, not its path`);
      if (value !== "unconfined") parseProfile(value);
      out.seccomp = value;
    } else if (key === "label") {
      if (value !== "disable") throw bad(`label options other than "disable" need SELinux, which ArcBox does not use: "${opt}"`);
    } else if (key === "apparmor") {
      if (value !== "unconfined") throw bad(`AppArmor profiles are not supported by ArcBox: "${opt}"`);
    } else if (key === "systempaths") {
      if (value !== "unconfined") throw bad(`invalid --security-opt 2: "${opt}"`);
      throw bad(`security option "${opt}" is not supported by ArcBox`);
    } else throw bad(`invalid --security-opt 2: "${opt}"`);
  }
  return out;
}

function parseProfile(json: string): void {
  let p: unknown;
  try {
    p = JSON.parse(json);
  } catch (err) {
    throw bad(`Decoding seccomp profile failed: ${(err as Error).message}`);
  }
  if (typeof p !== "object" || p === null || typeof (p as { defaultAction?: unknown }).defaultAction !== "string") throw bad("Decoding seccomp profile failed: defaultAction is required");
}

const DEVICE_RULE = /^([abc]) (\d+|\*):(\d+|\*) ([rwm]{1,3})$/;

function checkDevices(o: HostOptions): void {
  for (const d of o.Devices ?? []) {
    if (!d.PathOnHost.startsWith("/")) throw bad(`invalid device mapping: ${d.PathOnHost}: the host path must be absolute`);
    if (d.PathInContainer && !d.PathInContainer.startsWith("/")) throw bad(`${d.PathInContainer} is not an absolute path`);
    if (d.CgroupPermissions && !/^[rwm]{1,3}$/.test(d.CgroupPermissions)) throw bad(`invalid device mode: ${d.CgroupPermissions}`);
  }
  for (const rule of o.DeviceCgroupRules ?? []) if (!DEVICE_RULE.test(rule)) throw bad(`invalid device cgroup format '${rule}'`);
}

/** All checks; throws a 400 with Docker's wording on the first problem. */
export function checkHostOptions(o: HostOptions): void {
  checkDevices(o);
  checkNamespaceMode("PID", o.PidMode);
  checkNamespaceMode("IPC", o.IpcMode, ["private", "shareable"]);
  // dockerd's UTSMode knows only "" and "host".
  checkNamespaceMode("UTS", o.UTSMode, [], false);
  for (const g of o.GroupAdd ?? []) if (!g) throw bad("invalid GroupAdd: empty group");
  checkSysctls(o);
  checkUlimits(o);
  parseSecurityOpt(o.SecurityOpt);
  const sw = o.MemorySwappiness;
  if (sw != null && sw !== -1 && (sw < 0 || sw > 100)) throw bad(`Invalid value: ${sw}, valid memory swappiness range is 0-100`);
  if (o.Runtime && o.Runtime !== "runc") throw bad(`unknown or invalid runtime name: ${o.Runtime}`);
  if (o.Isolation && o.Isolation !== "default") throw bad(`Invalid isolation: "${o.Isolation}" - Linux only supports 'default'`);
  if (o.VolumeDriver && o.VolumeDriver !== "local") throw bad(`volume driver "${o.VolumeDriver}" is not supported by ArcBox (only local)`);
}

/** Rewrites PidMode/IpcMode "container:<name or prefix>" to the full ID, as NetworkMode is kept. */
export function resolveSharedModes(hostConfig: Record<string, unknown>, lookup: (ref: string) => { id: string }): void {
  for (const key of ["PidMode", "IpcMode"]) {
    const ref = sharedWith(hostConfig[key]);
    if (ref) hostConfig[key] = `container:${lookup(ref).id}`;
  }
}
