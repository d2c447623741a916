/**
 * The resource limits a container may set at create and change with update (memory,
 * swap, CPUs, cpuset, pids) and the restart policy: one zod shape for both bodies and
 * Docker's semantic checks (daemon verifyPlatformContainerResources), so a value Docker
 * refuses with a 400 is refused here, before anything is stored, instead of failing
 * later in runc.
 */
import { availableParallelism } from "node:os";
import { z } from "zod";
import { ContainerError } from "./container-error.ts";

/** An int64 as Docker's JSON decoder takes it, limited to what a double holds exactly. */
const int = z.number().int().nullish();

export const resourceShape = {
  Memory: int,
  MemorySwap: int,
  NanoCpus: int,
  CpuShares: int,
  CpuQuota: int,
  CpuPeriod: int,
  CpusetCpus: z.string().nullish(),
  PidsLimit: int,
};

export const restartPolicySchema = z.looseObject({ Name: z.string().nullish(), MaximumRetryCount: int });

export type Resources = z.infer<z.ZodObject<typeof resourceShape>>;
export type RestartPolicy = z.infer<typeof restartPolicySchema>;

/** Docker's linuxMinMemory. */
export const MIN_MEMORY = 6 * 1024 * 1024;

const bad = (message: string) => new ContainerError("invalid_argument", message);

/** The host's CPUs, as Docker counts them for NanoCpus and cpusets. */
export function hostCpuCount(): number {
  return availableParallelism();
}

/** Docker's ParseUintList ("0-2,4"): the listed CPU numbers, or an error naming the format. */
export function parseCpuset(spec: string): number[] {
  const out = new Set<number>();
  if (spec === "") return [];
  for (const part of spec.split(",")) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) throw bad(`Invalid value ${spec} for cpuset cpus: invalid format: ${spec}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw bad(`Invalid value ${spec} for cpuset cpus: invalid range format: ${part}`);
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return [...out];
}

/**
 * The checks every resource set passes, at create and in an update body (`update`
 * relaxes what Docker relaxes there: swap may be given without memory when the record
 * already has a memory limit; `checkUpdate` covers that with the record's values).
 */
export function checkResources(r: Resources, opts: { update: boolean } = { update: false }): void {
  const memory = r.Memory ?? 0;
  const swap = r.MemorySwap ?? 0;
  if (memory !== 0 && memory < MIN_MEMORY) throw bad("Minimum memory limit allowed is 6MB");
  if (swap < -1) throw bad("Invalid value for MemorySwap: use -1 for unlimited swap, or a limit at least as large as Memory");
  if (memory > 0 && swap > 0 && swap < memory) throw bad("Minimum memoryswap limit should be larger than memory limit, see usage");
  if (memory === 0 && swap > 0 && !opts.update) throw bad("You should always set the Memory limit when using Memoryswap limit, see usage");

  const ncpu = hostCpuCount();
  const nano = r.NanoCpus ?? 0;
  if (nano > 0 && (r.CpuPeriod ?? 0) > 0) throw bad("Conflicting options: Nano CPUs and CPU Period cannot both be set");
  if (nano > 0 && (r.CpuQuota ?? 0) > 0) throw bad("Conflicting options: Nano CPUs and CPU Quota cannot both be set");
  if (nano < 0 || nano > ncpu * 1e9) throw bad(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
  const period = r.CpuPeriod ?? 0;
  if (period !== 0 && (period < 1000 || period > 1_000_000)) throw bad("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)");
  const quota = r.CpuQuota ?? 0;
  // -1 is the kernel's "no limit"; Docker 20.10 passes other negatives through to runc.
  if (quota < -1 || (quota > 0 && quota < 1000)) throw bad("CPU cfs quota can not be less than 1ms (i.e. 1000); use -1 for no limit");
  if ((r.CpuShares ?? 0) < 0) throw bad("CPU shares can not be negative");

  if (r.CpusetCpus) {
    const cpus = parseCpuset(r.CpusetCpus);
    if (cpus.some((c) => c >= ncpu)) throw bad(`Requested CPUs are not available - requested ${r.CpusetCpus}, available: ${ncpu === 1 ? "0" : `0-${ncpu - 1}`}`);
  }
}

/** The restart policy rules shared by create and update (Docker's wording). */
export function checkRestartPolicy(p: RestartPolicy | null | undefined, autoRemove: boolean): void {
  const name = p?.Name ?? "";
  const retries = p?.MaximumRetryCount ?? 0;
  if (!["", "no", "always", "unless-stopped", "on-failure"].includes(name)) throw bad(`invalid restart policy '${name}': must be no, always, unless-stopped or on-failure`);
  if (retries < 0) throw bad("invalid restart policy: maximum retry count cannot be negative");
  if (retries > 0 && name !== "on-failure") throw bad(`invalid restart policy: maximum retry count cannot be used with restart policy '${name}'`);
  if (autoRemove && name !== "" && name !== "no") throw bad("conflicting options: cannot specify both --restart and --rm");
}

/** Resource fields of Docker's UpdateConfig that ArcBox cannot change (a 400 when set). */
const UNSUPPORTED_UPDATE_FIELDS = [
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
  "Devices",
  "DeviceCgroupRules",
  "DeviceRequests",
  "KernelMemory",
  "KernelMemoryTCP",
  "MemoryReservation",
  "MemorySwappiness",
  "OomKillDisable",
  "Init",
  "Ulimits",
  "CpuCount",
  "CpuPercent",
  "IOMaximumIOps",
  "IOMaximumBandwidth",
];

export const updateBodySchema = z.looseObject({ ...resourceShape, RestartPolicy: restartPolicySchema.nullish() });
export type UpdateBody = z.infer<typeof updateBodySchema>;

const isUnset = (v: unknown) => v === null || v === undefined || v === 0 || v === "" || v === false || (Array.isArray(v) && v.length === 0);

/** The resource and restart fields of a record's HostConfig that update may change. */
export interface UpdatableHostConfig extends Resources {
  AutoRemove?: boolean | null;
  RestartPolicy?: RestartPolicy | null;
}

/**
 * Validates `POST /containers/{id}/update` against the record's current HostConfig and
 * returns the HostConfig fields to store. Throws (and nothing changes) on any value
 * Docker refuses, a type error, or a combination the record could not start with.
 * As Docker: 0, "" and null leave a field as it is; unknown fields are ignored.
 */
export function planUpdate(raw: unknown, current: UpdatableHostConfig): Partial<UpdatableHostConfig> {
  const parsed = updateBodySchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw bad(`invalid update: ${issue.path.join(".") || "body"}: ${issue.message}`);
  }
  const body = parsed.data;
  for (const k of UNSUPPORTED_UPDATE_FIELDS) if (!isUnset(body[k])) throw bad(`${k} cannot be updated by ArcBox`);
  checkResources(body, { update: true });

  // Docker's conflicts between the update and what the container already has (409).
  const conflict = (msg: string) => new ContainerError("conflict", msg);
  const nano = body.NanoCpus ?? 0;
  if (nano > 0 && (current.CpuPeriod ?? 0) > 0) throw conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set");
  if (nano > 0 && (current.CpuQuota ?? 0) > 0) throw conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set");
  if ((body.CpuPeriod ?? 0) > 0 && (current.NanoCpus ?? 0) > 0) throw conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set");
  if ((body.CpuQuota ?? 0) > 0 && (current.NanoCpus ?? 0) > 0) throw conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set");
  if (!isUnset(body.Memory) && isUnset(body.MemorySwap) && (current.MemorySwap ?? 0) > 0 && body.Memory! > current.MemorySwap!) {
    throw conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
  }

  const next: Partial<UpdatableHostConfig> = {};
  for (const k of Object.keys(resourceShape) as (keyof Resources)[]) if (!isUnset(body[k])) (next as Record<string, unknown>)[k] = body[k];
  if (body.RestartPolicy?.Name) {
    if (current.AutoRemove && body.RestartPolicy.Name !== "no") throw bad("Restart policy cannot be updated because AutoRemove is enabled for the container");
    checkRestartPolicy(body.RestartPolicy, false);
    next.RestartPolicy = { Name: body.RestartPolicy.Name, MaximumRetryCount: body.RestartPolicy.MaximumRetryCount ?? 0 };
  }
  // The record after the update must still be one that can start.
  const merged = { ...current, ...next };
  if ((merged.MemorySwap ?? 0) > 0 && !(merged.Memory ?? 0)) throw bad("You should always set the Memory limit when using Memoryswap limit, see usage");
  if ((merged.Memory ?? 0) > 0 && (merged.MemorySwap ?? 0) > 0 && merged.MemorySwap! < merged.Memory!) throw bad("Minimum memoryswap limit should be larger than memory limit, see usage");
  return next;
}
