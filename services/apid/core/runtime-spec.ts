/**
 * Translates a container record into vmm's CreateContainer request (the runtime
 * contract): process, rootfs, mounts, resources and network namespace.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CreateContainerRequestSchema, ProcessSpecSchema } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { ContainerRecord, MountPoint, NetworkInfo } from "./container-record.ts";
import { ENGINE_MACHINE_NAME } from "./engine-target.ts";
import { parseSecurityOpt } from "./host-options.ts";

/** The machine that runs containers: "host", or the engine machine in VM mode (engine-target.ts). */
export const HOST_MACHINE = ENGINE_MACHINE_NAME;

type CreateRequest = MessageInitShape<typeof CreateContainerRequestSchema>;
type ProcessInit = MessageInitShape<typeof ProcessSpecSchema>;

export function processSpec(rec: ContainerRecord): ProcessInit {
  const c = rec.config;
  const h = rec.hostConfig;
  const [height, width] = h.ConsoleSize ?? [0, 0];
  return {
    args: [rec.path, ...rec.args],
    env: withDefaults(withLinkEnv(rec.network?.linkEnv ?? [], c.Env ?? []), rec, !!c.Tty),
    cwd: c.WorkingDir || "/",
    user: c.User ?? "",
    tty: !!c.Tty,
    openStdin: !!c.OpenStdin,
    stdinOnce: !!c.StdinOnce,
    capAdd: h.CapAdd ?? [],
    capDrop: h.CapDrop ?? [],
    privileged: !!h.Privileged,
    ttyHeight: height ?? 0,
    ttyWidth: width ?? 0,
    ...processOptions(rec),
  };
}

/** What an exec shares with its container's process (as dockerd's execSetPlatformOpt). */
export function processOptions(rec: ContainerRecord) {
  const h = rec.hostConfig;
  const ulimits = (h.Ulimits ?? []) as { Name: string; Soft: number; Hard: number }[];
  return {
    groupAdd: (h.GroupAdd ?? []) as string[],
    noNewPrivileges: parseSecurityOpt(h.SecurityOpt).noNewPrivileges,
    rlimits: ulimits.map((u) => ({ name: u.Name, soft: BigInt(u.Soft), hard: BigInt(u.Hard) })),
  };
}

/** Links' variables first; the container's own Env wins over one of the same name. */
function withLinkEnv(linkEnv: string[], env: string[]): string[] {
  const own = new Set(env.map((e) => e.split("=", 1)[0]));
  return [...linkEnv.filter((e) => !own.has(e.split("=", 1)[0])), ...env];
}

/** Docker always sets PATH and HOSTNAME (and TERM with a TTY) unless the image did. */
function withDefaults(env: string[], rec: ContainerRecord, tty: boolean): string[] {
  const has = (k: string) => env.some((e) => e.startsWith(`${k}=`));
  const out = [...env];
  if (!has("PATH")) out.unshift("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  if (!has("HOSTNAME")) out.unshift(`HOSTNAME=${hostnameOf(rec)}`);
  if (tty && !has("TERM")) out.push("TERM=xterm");
  return out;
}

export function hostnameOf(rec: ContainerRecord): string {
  return rec.config.Hostname || rec.id.slice(0, 12);
}

function runtimeMount(m: MountPoint) {
  if (m.Type === "tmpfs") return { destination: m.Destination, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "noexec", ...(m.RW ? [] : ["ro"]), ...(m.options ?? [])] };
  const propagation = m.Propagation || "rprivate";
  return {
    destination: m.Destination,
    type: "bind",
    source: m.Source,
    options: ["rbind", m.RW ? "rw" : "ro", propagation],
    ...(m.machineTmpfs === undefined ? {} : { volumeTmpfs: m.machineTmpfs }),
  };
}

export function createRequest(rec: ContainerRecord, net: NetworkInfo): CreateRequest {
  const h = rec.hostConfig;
  const mounts = rec.mounts.map(runtimeMount);
  if (!rec.mounts.some((m) => m.Destination === "/dev/shm"))
    mounts.push({ destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", `size=${h.ShmSize || 67108864}`] });
  return {
    machine: HOST_MACHINE,
    id: rec.id,
    rootfs: { lowerDirs: rec.rootfs.lowerDirs, upperDir: rec.rootfs.upperDir, workDir: rec.rootfs.workDir, readonly: !!h.ReadonlyRootfs },
    process: processSpec(rec),
    hostname: net.hostNetwork ? "" : hostnameOf(rec),
    domainname: rec.config.Domainname ?? "",
    mounts,
    resources: {
      memoryBytes: BigInt(h.Memory ?? 0),
      memorySwapBytes: BigInt(h.MemorySwap ?? 0),
      nanoCpus: BigInt(h.NanoCpus ?? 0),
      cpuShares: BigInt(h.CpuShares ?? 0),
      cpuQuota: BigInt(h.CpuQuota ?? 0),
      cpuPeriod: BigInt(h.CpuPeriod ?? 0),
      cpusetCpus: h.CpusetCpus ?? "",
      pidsLimit: BigInt(h.PidsLimit ?? 0),
    },
    netnsPath: net.netnsPath,
    hostNetwork: net.hostNetwork,
    hostsPath: net.hostsPath,
    resolvConfPath: net.resolvConfPath,
    hostnamePath: net.hostnamePath,
    init: !!h.Init,
    stopSignal: rec.config.StopSignal ?? "SIGTERM",
    // The `none` log driver keeps no log (`local` keeps the json-file one).
    logPath: rec.hostConfig.LogConfig?.Type === "none" ? "" : rec.logPath,
    annotations: { "org.arcbox.container.name": rec.name.slice(1) },
    joinNetnsOf: String(h.NetworkMode ?? "").startsWith("container:") ? String(h.NetworkMode) : "",
    pidMode: h.PidMode ?? "",
    ipcMode: h.IpcMode === "private" || h.IpcMode === "shareable" ? "" : (h.IpcMode ?? ""),
    utsMode: h.UTSMode ?? "",
    sysctls: h.Sysctls ?? {},
    seccompProfile: parseSecurityOpt(h.SecurityOpt).seccomp,
    ...(h.MemorySwappiness != null && h.MemorySwappiness >= 0 ? { memorySwappiness: BigInt(h.MemorySwappiness) } : {}),
    devices: ((h.Devices ?? []) as { PathOnHost: string; PathInContainer?: string | null; CgroupPermissions?: string | null }[]).map((d) => ({
      pathOnHost: d.PathOnHost,
      pathInContainer: d.PathInContainer ?? "",
      cgroupPermissions: d.CgroupPermissions ?? "",
    })),
    deviceCgroupRules: (h.DeviceCgroupRules ?? []) as string[],
  };
}
