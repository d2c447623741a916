/**
 * Validation of `POST /containers/create` bodies (zod) and the merge with the image
 * config, producing the Config/HostConfig a record keeps. Options ArcBox does not
 * implement are rejected with a 400 when set, never silently dropped.
 */
import { z } from "zod";
import { normalizeCapability } from "../../../lib/capabilities.ts";
import { ContainerError } from "./container-error.ts";
import type { MountPoint } from "./container-record.ts";
import { checkHostOptions, hostOptionsShape } from "./host-options.ts";
import { checkResources, checkRestartPolicy, resourceShape, restartPolicySchema } from "./resource-limits.ts";

const strList = z.array(z.string()).nullish();
const strMap = z.record(z.string(), z.string()).nullish();

const int = z.number().int().nullish();

/** Config.Healthcheck: durations in nanoseconds (0 = inherit / default). */
const healthcheckSchema = z.looseObject({ Test: strList, Interval: int, Timeout: int, StartPeriod: int, StartInterval: int, Retries: int });
export type HealthcheckConfig = z.infer<typeof healthcheckSchema>;

const configSchema = z.looseObject({
  Hostname: z.string().nullish(),
  Domainname: z.string().nullish(),
  User: z.string().nullish(),
  AttachStdin: z.boolean().nullish(),
  AttachStdout: z.boolean().nullish(),
  AttachStderr: z.boolean().nullish(),
  ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
  Tty: z.boolean().nullish(),
  OpenStdin: z.boolean().nullish(),
  StdinOnce: z.boolean().nullish(),
  Env: strList,
  Cmd: z.union([z.array(z.string()), z.string()]).nullish(),
  Entrypoint: z.union([z.array(z.string()), z.string()]).nullish(),
  Image: z.string().nullish(),
  Volumes: z.record(z.string(), z.unknown()).nullish(),
  WorkingDir: z.string().nullish(),
  Labels: strMap,
  StopSignal: z.string().nullish(),
  StopTimeout: z.number().int().nullish(),
  NetworkDisabled: z.boolean().nullish(),
  ArgsEscaped: z.boolean().nullish(),
  Shell: strList,
  OnBuild: strList,
  MacAddress: z.string().nullish(),
  Healthcheck: healthcheckSchema.nullish(),
});

const mountSchema = z.looseObject({
  Target: z.string(),
  Source: z.string().nullish(),
  Type: z.enum(["bind", "volume", "tmpfs"], { message: "mount type must be bind, volume or tmpfs" }),
  ReadOnly: z.boolean().nullish(),
  Consistency: z.string().nullish(),
  BindOptions: z.looseObject({ Propagation: z.string().nullish(), NonRecursive: z.boolean().nullish(), CreateMountpoint: z.boolean().nullish() }).nullish(),
  VolumeOptions: z
    .looseObject({ NoCopy: z.boolean().nullish(), Labels: strMap, DriverConfig: z.looseObject({ Name: z.string().nullish(), Options: strMap }).nullish(), Subpath: z.string().nullish() })
    .nullish(),
  TmpfsOptions: z.looseObject({ SizeBytes: z.number().int().nullish(), Mode: z.number().int().nullish() }).nullish(),
});

const hostConfigSchema = z.looseObject({
  Binds: strList,
  VolumesFrom: strList,
  Mounts: z.array(mountSchema).nullish(),
  Tmpfs: strMap,
  NetworkMode: z.string().nullish(),
  Links: strList,
  PortBindings: z.record(z.string(), z.array(z.looseObject({ HostIp: z.string().nullish(), HostPort: z.string().nullish() })).nullish()).nullish(),
  PublishAllPorts: z.boolean().nullish(),
  RestartPolicy: restartPolicySchema.nullish(),
  AutoRemove: z.boolean().nullish(),
  CapAdd: strList,
  CapDrop: strList,
  Dns: strList,
  DnsOptions: strList,
  DnsSearch: strList,
  ExtraHosts: strList,
  Privileged: z.boolean().nullish(),
  ReadonlyRootfs: z.boolean().nullish(),
  Init: z.boolean().nullish(),
  ...resourceShape,
  ...hostOptionsShape,
  ShmSize: int,
  ConsoleSize: z.array(z.number().int()).nullish(),
  LogConfig: z.looseObject({ Type: z.string().nullish(), Config: strMap }).nullish(),
});

const endpointSettingsSchema = z.looseObject({
  IPAMConfig: z.looseObject({ IPv4Address: z.string().nullish(), IPv6Address: z.string().nullish(), LinkLocalIPs: strList }).nullish(),
  Links: strList,
  Aliases: strList,
  DriverOpts: strMap,
  MacAddress: z.string().nullish(),
  NetworkID: z.string().nullish(),
  EndpointID: z.string().nullish(),
  Gateway: z.string().nullish(),
  IPAddress: z.string().nullish(),
  DNSNames: strList,
});

export const createBodySchema = configSchema.extend({
  HostConfig: hostConfigSchema.nullish(),
  NetworkingConfig: z.looseObject({ EndpointsConfig: z.record(z.string(), endpointSettingsSchema.nullish()).nullish() }).nullish(),
});

export type CreateBody = z.infer<typeof createBodySchema>;

/**
 * The Config a record keeps (inspect's `Config`): the create schema's fields, filled in
 * by normalizeCreate from the body and the image. Fields Docker knows and ArcBox keeps
 * without a schema entry ride on the schema's loose index signature.
 */
export type ContainerConfig = z.infer<typeof configSchema>;
/** The HostConfig a record keeps (inspect's `HostConfig`), as normalizeCreate fills it in. */
export type HostConfig = z.infer<typeof hostConfigSchema>;
/** NetworkingConfig.EndpointsConfig entries as given at create (or network connect). */
export type EndpointSettings = z.infer<typeof endpointSettingsSchema>;

/**
 * Docker's HostConfig fields (Engine API 1.50) that ArcBox does not implement: accepted
 * only at their zero value (or a listed default), else a 400 naming the field, never
 * silently dropped. Fields Docker does not know are ignored, as Docker ignores them.
 */
const HOST_CONFIG_UNSUPPORTED = [
  "CgroupParent",
  "BlkioWeight",
  "BlkioWeightDevice",
  "BlkioDeviceReadBps",
  "BlkioDeviceWriteBps",
  "BlkioDeviceReadIOps",
  "BlkioDeviceWriteIOps",
  "CpuRealtimePeriod",
  "CpuRealtimeRuntime",
  "CpusetMems",
  "DeviceRequests",
  "KernelMemory",
  "KernelMemoryTCP",
  "MemoryReservation",
  "OomKillDisable",
  "CpuCount",
  "CpuPercent",
  "IOMaximumIOps",
  "IOMaximumBandwidth",
  "ContainerIDFile",
  "Annotations",
  "CgroupnsMode",
  "Cgroup",
  "OomScoreAdj",
  "StorageOpt",
  "UsernsMode",
  "MaskedPaths",
  "ReadonlyPaths",
];

function isZero(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.values(v as object).every(isZero);
  return false;
}

function rejectUnsupported(obj: Record<string, unknown>, fields: string[], prefix: string, allowed: Record<string, unknown[]> = {}): void {
  for (const k of fields) {
    const v = obj[k];
    if (isZero(v) || allowed[k]?.includes(v)) continue;
    throw new ContainerError("invalid_argument", `${prefix}${k} is not supported by ArcBox`);
  }
}

/** `local` keeps the same json-file log here (Docker's is a compressed binary format); `none` keeps none. */
export const LOG_DRIVERS = ["json-file", "local", "none"];

const keysOnly = (set: Record<string, unknown>): Record<string, object> => Object.fromEntries(Object.keys(set).map((k) => [k, {}]));

const asList = (v: string[] | string | null | undefined): string[] | undefined => (v == null ? undefined : typeof v === "string" ? [v] : v);

export interface ImageConfig {
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Volumes?: Record<string, object>;
  ExposedPorts?: Record<string, object>;
  Healthcheck?: HealthcheckConfig;
}

/** Image env first, then the user's; a later KEY replaces an earlier one in place. */
function mergeEnv(image: string[] = [], user: string[] = []): string[] {
  const out = new Map<string, string>();
  for (const e of [...image, ...user]) {
    const key = e.split("=", 1)[0]!;
    out.delete(key);
    out.set(key, e);
  }
  return [...out.values()];
}

export interface NormalizedCreate {
  config: ContainerConfig;
  hostConfig: HostConfig;
  endpointsConfig: Record<string, EndpointSettings | null | undefined>;
  path: string;
  args: string[];
  mounts: MountPoint[];
}

/** Parses and validates the request body (no image needed yet). */
export function parseCreateBody(raw: unknown): CreateBody {
  const parsed = createBodySchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ContainerError("invalid_argument", `invalid container config: ${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  const body = parsed.data;
  checkHealthcheck(body.Healthcheck);
  // dockerd's check (net.ParseMAC, for the Ethernet addresses a bridge endpoint takes).
  const macs = [body.MacAddress, ...Object.values(body.NetworkingConfig?.EndpointsConfig ?? {}).map((e) => e?.MacAddress)];
  for (const mac of macs) if (mac && !/^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}$/.test(mac)) throw new ContainerError("invalid_argument", `${mac} is not a valid mac address`);
  const hc = body.HostConfig ?? {};
  rejectUnsupported(hc, HOST_CONFIG_UNSUPPORTED, "HostConfig.", { CgroupnsMode: ["private", "host"] });
  checkHostOptions(hc);
  const logType = hc.LogConfig?.Type;
  if (logType && !LOG_DRIVERS.includes(logType)) throw new ContainerError("invalid_argument", `logging driver "${logType}" is not supported by ArcBox (only json-file, local and none)`);
  checkRestartPolicy(hc.RestartPolicy, hc.AutoRemove ?? false);
  checkResources(hc);
  if ((hc.ShmSize ?? 0) < 0) throw new ContainerError("invalid_argument", "SHM size can not be less than 0");
  checkPortBindings(hc.PortBindings);
  checkCapabilities("CapAdd", hc.CapAdd);
  checkCapabilities("CapDrop", hc.CapDrop);
  if (body.StopSignal && !isSignal(body.StopSignal)) throw new ContainerError("invalid_argument", `Invalid signal: ${body.StopSignal}`);
  return body;
}

/** dockerd's validateHealthCheck (durations of at least 1ms, retries not negative). */
function checkHealthcheck(hc: HealthcheckConfig | null | undefined): void {
  if (!hc) return;
  for (const k of ["Interval", "Timeout", "StartPeriod", "StartInterval"] as const) {
    const v = hc[k] ?? 0;
    if (v !== 0 && v < 1_000_000) throw new ContainerError("invalid_argument", `${k} in Healthcheck cannot be less than 1ms`);
  }
  if ((hc.Retries ?? 0) < 0) throw new ContainerError("invalid_argument", "Retries in Healthcheck cannot be negative");
}

/** dockerd's merge with the image's HEALTHCHECK: the user's fields win where set. */
function mergeHealthcheck(user: HealthcheckConfig | null | undefined, image: HealthcheckConfig | undefined): HealthcheckConfig | undefined {
  if (!user) return image ?? undefined;
  if (!image) return user;
  return {
    ...user,
    Test: user.Test?.length ? user.Test : image.Test,
    Interval: user.Interval || image.Interval,
    Timeout: user.Timeout || image.Timeout,
    StartPeriod: user.StartPeriod || image.StartPeriod,
    StartInterval: user.StartInterval || image.StartInterval,
    Retries: user.Retries || image.Retries,
  };
}

/** Docker's nat.ParsePortRange: "N" or "N-M", each 0..65535 (the container side takes one port). */
function isPortRange(s: string, allowRange: boolean): boolean {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (!m || (m[2] !== undefined && !allowRange)) return false;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return lo <= 65535 && hi <= 65535 && lo <= hi;
}

/** As Docker's verifyContainerSettings: container ports are single ports, host ports a port or a range. */
function checkPortBindings(bindings: Record<string, { HostPort?: string | null }[] | null | undefined> | null | undefined): void {
  for (const [key, list] of Object.entries(bindings ?? {})) {
    const port = key.split("/", 1)[0]!;
    if (!isPortRange(port, false)) throw new ContainerError("invalid_argument", `invalid port specification: "${port}"`);
    for (const b of list ?? []) {
      const host = b.HostPort ?? "";
      if (host !== "" && !isPortRange(host, true)) throw new ContainerError("invalid_argument", `invalid port specification: "${host}"`);
    }
  }
}

function checkCapabilities(field: "CapAdd" | "CapDrop", caps: string[] | null | undefined): void {
  for (const cap of caps ?? []) {
    if (!normalizeCapability(cap))
      throw new ContainerError(
        "invalid_argument",
        `invalid ${field}: unknown capability: "${cap.trim().toUpperCase().startsWith("CAP_") ? cap.trim().toUpperCase() : `CAP_${cap.trim().toUpperCase()}`}"`,
      );
  }
}

const SIGNALS = "HUP INT QUIT ILL TRAP ABRT BUS FPE KILL USR1 SEGV USR2 PIPE ALRM TERM STKFLT CHLD CONT STOP TSTP TTIN TTOU URG XCPU XFSZ VTALRM PROF WINCH IO PWR SYS".split(" ");
export function isSignal(s: string): boolean {
  if (/^\d+$/.test(s)) return Number(s) > 0 && Number(s) <= 64;
  const name = s.toUpperCase().replace(/^SIG/, "");
  return SIGNALS.includes(name) || /^RTM(IN|AX)([+-]\d+)?$/.test(name);
}

/** Planned mounts from Binds, Mounts, Tmpfs and image/config volumes; later entries never shadow earlier ones. */
export function planMounts(body: CreateBody, imageVolumes: Record<string, object> = {}): MountPoint[] {
  const hc = body.HostConfig ?? {};
  const out: MountPoint[] = [];
  const seen = new Set<string>();
  const add = (m: MountPoint) => {
    if (!m.Destination.startsWith("/")) throw new ContainerError("invalid_argument", `invalid mount config: mount path must be absolute: ${m.Destination}`);
    const dest = m.Destination.replace(/\/+$/, "") || "/";
    if (dest === "/") throw new ContainerError("invalid_argument", "invalid mount config: destination can't be '/'");
    if (seen.has(dest)) throw new ContainerError("invalid_argument", `Duplicate mount point: ${dest}`);
    seen.add(dest);
    out.push({ ...m, Destination: dest });
  };
  for (const bind of hc.Binds ?? []) {
    const parts = bind.split(":");
    if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw new ContainerError("invalid_argument", `invalid volume specification: '${bind}'`);
    const [src, dst, opts = ""] = parts as [string, string, string?];
    const flags = opts ? opts.split(",") : [];
    for (const f of flags)
      if (!["ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "shared", "rshared", "slave", "rslave"].includes(f)) throw new ContainerError("invalid_argument", `invalid mode: ${f}`);
    const rw = !flags.includes("ro");
    const propagation = flags.find((f) => f.includes("private") || f.includes("shared") || f.includes("slave")) ?? "rprivate";
    if (src.startsWith("/")) add({ Type: "bind", Source: src, Destination: dst, Mode: opts, RW: rw, Propagation: propagation });
    else {
      if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(src)) throw new ContainerError("invalid_argument", `invalid volume name "${src}": only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed`);
      add({ Type: "volume", Name: src, Source: "", Destination: dst, Driver: "local", Mode: opts || "z", RW: rw, Propagation: "", options: flags.includes("nocopy") ? ["nocopy"] : [] });
    }
  }
  for (const m of hc.Mounts ?? []) {
    const rw = !m.ReadOnly;
    if (m.Type === "bind") {
      if (!m.Source?.startsWith("/")) throw new ContainerError("invalid_argument", `invalid mount config for type "bind": invalid mount path: '${m.Source ?? ""}' mount path must be absolute`);
      add({
        Type: "bind",
        Source: m.Source,
        Destination: m.Target,
        Mode: "",
        RW: rw,
        Propagation: m.BindOptions?.Propagation || "rprivate",
        options: m.BindOptions?.CreateMountpoint ? ["create"] : ["must-exist"],
      });
    } else if (m.Type === "volume") {
      if (m.VolumeOptions?.Subpath) throw new ContainerError("invalid_argument", "VolumeOptions.Subpath is not supported by ArcBox");
      add({
        Type: "volume",
        Name: m.Source ?? "",
        Source: "",
        Destination: m.Target,
        Driver: m.VolumeOptions?.DriverConfig?.Name || "local",
        Mode: "z",
        RW: rw,
        Propagation: "",
        options: m.VolumeOptions?.NoCopy ? ["nocopy"] : [],
      });
    } else {
      if (m.Source) throw new ContainerError("invalid_argument", `invalid mount config for type "tmpfs": field Source must not be specified`);
      const opts: string[] = [];
      if (m.TmpfsOptions?.SizeBytes) opts.push(`size=${m.TmpfsOptions.SizeBytes}`);
      if (m.TmpfsOptions?.Mode) opts.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
      add({ Type: "tmpfs", Source: "", Destination: m.Target, Mode: "", RW: rw, Propagation: "", options: opts });
    }
  }
  for (const [dst, opts] of Object.entries(hc.Tmpfs ?? {})) {
    const flags = opts ? opts.split(",") : [];
    add({ Type: "tmpfs", Source: "", Destination: dst, Mode: opts, RW: !flags.includes("ro"), Propagation: "", options: flags.filter((f) => f !== "ro" && f !== "rw") });
  }
  for (const dst of Object.keys({ ...imageVolumes, ...(body.Volumes ?? {}) })) {
    const d = dst.replace(/\/+$/, "") || "/";
    if (seen.has(d)) continue;
    add({ Type: "volume", Name: "", Source: "", Destination: d, Driver: "local", Mode: "", RW: true, Propagation: "", options: [] });
  }
  return out;
}

/**
 * `--volumes-from name[:ro|rw]`: the volumes and binds of another container, mounted at
 * the same places (read-only with `:ro`, else as the source has them). Mounts the new
 * container declares itself win.
 */
export function addVolumesFrom(mounts: MountPoint[], specs: string[] | null | undefined, lookup: (ref: string) => { mounts: MountPoint[] }): void {
  const taken = new Set(mounts.map((m) => m.Destination));
  for (const spec of specs ?? []) {
    const [ref, mode = "", extra] = spec.split(":");
    if (!ref || extra !== undefined || !["", "ro", "rw"].includes(mode)) throw new ContainerError("invalid_argument", `invalid volumes-from specification: '${spec}'`);
    for (const m of lookup(ref).mounts) {
      if (m.Type === "tmpfs" || taken.has(m.Destination)) continue;
      taken.add(m.Destination);
      mounts.push({ ...m, RW: mode === "ro" ? false : mode === "rw" ? true : m.RW, Mode: mode || m.Mode });
    }
  }
}

/** Merges the validated body with the image config into what the record stores. */
export function normalizeCreate(body: CreateBody, imageRef: string, image: ImageConfig): NormalizedCreate {
  const userEntrypoint = asList(body.Entrypoint);
  let cmd = asList(body.Cmd);
  // Docker: an explicit entrypoint drops the image's Cmd unless Cmd was given too.
  if (!cmd?.length && !userEntrypoint) cmd = image.Cmd ?? [];
  const entrypoint = userEntrypoint ?? image.Entrypoint ?? [];
  const argv = [...(entrypoint.length === 1 && entrypoint[0] === "" ? [] : entrypoint), ...(cmd ?? [])];
  if (argv.length === 0) throw new ContainerError("invalid_argument", "no command specified");
  const hc = body.HostConfig ?? {};
  const config: ContainerConfig = {
    Hostname: body.Hostname ?? "",
    Domainname: body.Domainname ?? "",
    User: body.User || image.User || "",
    AttachStdin: body.AttachStdin ?? false,
    AttachStdout: body.AttachStdout ?? false,
    AttachStderr: body.AttachStderr ?? false,
    // Docker keeps only the keys of these sets (their values are empty structs).
    ExposedPorts: keysOnly({ ...(image.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) }),
    Tty: body.Tty ?? false,
    OpenStdin: body.OpenStdin ?? false,
    StdinOnce: body.StdinOnce ?? false,
    Env: mergeEnv(image.Env, body.Env ?? []),
    Cmd: cmd ?? null,
    Image: imageRef,
    Volumes: Object.keys({ ...(image.Volumes ?? {}), ...(body.Volumes ?? {}) }).length ? keysOnly({ ...(image.Volumes ?? {}), ...(body.Volumes ?? {}) }) : null,
    WorkingDir: body.WorkingDir || image.WorkingDir || "",
    Entrypoint: entrypoint.length ? entrypoint : null,
    OnBuild: null,
    Labels: { ...(image.Labels ?? {}), ...(body.Labels ?? {}) },
  };
  if (!Object.keys(config.ExposedPorts ?? {}).length) delete config.ExposedPorts;
  const stopSignal = body.StopSignal || image.StopSignal;
  if (stopSignal) config.StopSignal = stopSignal;
  if (body.StopTimeout != null) config.StopTimeout = body.StopTimeout;
  if (body.MacAddress) config.MacAddress = body.MacAddress;
  const healthcheck = mergeHealthcheck(body.Healthcheck, image.Healthcheck);
  if (healthcheck) config.Healthcheck = healthcheck;
  if (config.WorkingDir && !config.WorkingDir.startsWith("/")) throw new ContainerError("invalid_argument", `the working directory '${config.WorkingDir}' is invalid, it needs to be an absolute path`);
  const hostConfig: HostConfig = {
    Binds: hc.Binds ?? null,
    ContainerIDFile: "",
    LogConfig: { Type: hc.LogConfig?.Type || "json-file", Config: hc.LogConfig?.Config ?? {} },
    NetworkMode: !hc.NetworkMode || hc.NetworkMode === "default" ? "bridge" : hc.NetworkMode,
    PortBindings: hc.PortBindings ?? {},
    RestartPolicy: { Name: hc.RestartPolicy?.Name || "no", MaximumRetryCount: hc.RestartPolicy?.MaximumRetryCount ?? 0 },
    AutoRemove: hc.AutoRemove ?? false,
    VolumeDriver: hc.VolumeDriver ?? "",
    VolumesFrom: hc.VolumesFrom?.length ? hc.VolumesFrom : null,
    ConsoleSize: hc.ConsoleSize ?? [0, 0],
    CapAdd: hc.CapAdd ?? null,
    CapDrop: hc.CapDrop ?? null,
    CgroupnsMode: "private",
    Dns: hc.Dns ?? [],
    DnsOptions: hc.DnsOptions ?? [],
    DnsSearch: hc.DnsSearch ?? [],
    ExtraHosts: hc.ExtraHosts ?? null,
    GroupAdd: hc.GroupAdd?.length ? hc.GroupAdd : null,
    IpcMode: hc.IpcMode || "private",
    Cgroup: "",
    Links: hc.Links?.length ? hc.Links : null,
    OomScoreAdj: 0,
    PidMode: hc.PidMode ?? "",
    Privileged: hc.Privileged ?? false,
    PublishAllPorts: hc.PublishAllPorts ?? false,
    ReadonlyRootfs: hc.ReadonlyRootfs ?? false,
    SecurityOpt: hc.SecurityOpt?.length ? hc.SecurityOpt : null,
    UTSMode: hc.UTSMode ?? "",
    UsernsMode: "",
    ShmSize: hc.ShmSize || 64 * 1024 * 1024,
    Runtime: "runc",
    Isolation: hc.Isolation ?? "",
    CpuShares: hc.CpuShares ?? 0,
    Memory: hc.Memory ?? 0,
    NanoCpus: hc.NanoCpus ?? 0,
    CgroupParent: "",
    BlkioWeight: 0,
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuPeriod: hc.CpuPeriod ?? 0,
    CpuQuota: hc.CpuQuota ?? 0,
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetCpus: hc.CpusetCpus ?? "",
    CpusetMems: "",
    Devices: hc.Devices ?? [],
    DeviceCgroupRules: hc.DeviceCgroupRules?.length ? hc.DeviceCgroupRules : null,
    DeviceRequests: null,
    MemoryReservation: 0,
    MemorySwap: hc.MemorySwap ?? 0,
    MemorySwappiness: hc.MemorySwappiness ?? null,
    OomKillDisable: null,
    PidsLimit: hc.PidsLimit ?? null,
    Ulimits: hc.Ulimits ?? [],
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
    Mounts: hc.Mounts ?? undefined,
    Tmpfs: hc.Tmpfs ?? undefined,
    Init: hc.Init ?? null,
    MaskedPaths: [
      "/proc/asound",
      "/proc/acpi",
      "/proc/interrupts",
      "/proc/kcore",
      "/proc/keys",
      "/proc/latency_stats",
      "/proc/timer_list",
      "/proc/timer_stats",
      "/proc/sched_debug",
      "/proc/scsi",
      "/sys/firmware",
      "/sys/devices/virtual/powercap",
    ],
    ReadonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
  };
  if (hc.Sysctls && Object.keys(hc.Sysctls).length) hostConfig.Sysctls = hc.Sysctls;
  const mounts = planMounts(body, image.Volumes);
  return { config, hostConfig, endpointsConfig: body.NetworkingConfig?.EndpointsConfig ?? {}, path: argv[0]!, args: argv.slice(1), mounts };
}
