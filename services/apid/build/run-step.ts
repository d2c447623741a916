/**
 * A RUN step: a container from the step's parent image runs the command through the
 * same path as `docker run` (apid's container manager, vmm, the agent, runc), its
 * output streams into the build output from its json-file log, and on success
 * imaged commits its writable layer as the step's image.
 */
import { call } from "../core/backends.ts";
import type { Backends } from "../core/backends.ts";
import type { ContainerBackend } from "../core/container-backends.ts";
import { LogReader } from "../docker/streams/log-reader.ts";
import { BuildError } from "./errors.ts";
import type { RunConfig } from "./instructions.ts";
import { shortId, type BuildOutput } from "./output.ts";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { spoolLayerTar } from "../core/rootfs-cp.ts";

export interface RunLimits {
  networkMode: string;
  extraHosts: string[];
  shmSize?: number;
  memory?: number;
  memorySwap?: number;
  cpuShares?: number;
  cpuSetCpus?: string;
  cpuSetMems?: string;
  cpuPeriod?: number;
  cpuQuota?: number;
}

export interface RunStep {
  parentId: string;
  /** The image's config after the step (what the committed image carries). */
  config: RunConfig;
  command: string[];
  /** Build args passed to the command's environment only. */
  argsEnv: string[];
  createdBy: string;
  limits: RunLimits;
  /** Remove the container after success (rm) / always (forcerm). */
  rm: boolean;
  forceRm: boolean;
  signal: AbortSignal;
}

function hostConfig(l: RunLimits): Record<string, unknown> {
  const hc: Record<string, unknown> = { NetworkMode: l.networkMode && l.networkMode !== "default" ? l.networkMode : "bridge" };
  if (l.extraHosts.length) hc.ExtraHosts = l.extraHosts;
  if (l.shmSize) hc.ShmSize = l.shmSize;
  if (l.memory) hc.Memory = l.memory;
  if (l.memorySwap) hc.MemorySwap = l.memorySwap;
  if (l.cpuShares) hc.CpuShares = l.cpuShares;
  if (l.cpuSetCpus) hc.CpusetCpus = l.cpuSetCpus;
  if (l.cpuSetMems) hc.CpusetMems = l.cpuSetMems;
  if (l.cpuPeriod) hc.CpuPeriod = l.cpuPeriod;
  if (l.cpuQuota) hc.CpuQuota = l.cpuQuota;
  return hc;
}

/** What a RUN step needs of containers. */
export type StepContainers = Pick<ContainerBackend, "create" | "get" | "start" | "kill" | "remove" | "waitExit" | "rootfsHelpers" | "containerDir">;

export async function runStep(containers: StepContainers, images: Backends["images"], out: BuildOutput, s: RunStep): Promise<string> {
  const body = {
    Image: s.parentId,
    Cmd: s.command,
    Entrypoint: [""],
    Env: [...(s.config.Env ?? []), ...s.argsEnv],
    WorkingDir: s.config.WorkingDir ?? "",
    User: s.config.User ?? "",
    Labels: {},
    HostConfig: hostConfig(s.limits),
  };
  const { Id: id } = await containers.create(body, undefined);
  out.stream(` ---> Running in ${shortId(id)}\n`);
  let ok = false;
  try {
    const rec = containers.get(id);
    const exited = containers.waitExit(id);
    const onAbort = () => void containers.kill(id).catch(() => {});
    s.signal.addEventListener("abort", onAbort);
    try {
      await containers.start(id);
      const dec = new TextDecoder();
      const log = new LogReader(rec.logPath, { stdout: true, stderr: true, timestamps: false, raw: true }).stream({ stopped: exited });
      for await (const chunk of log) out.stream(dec.decode(chunk, { stream: true }));
      const res = await exited;
      if (s.signal.aborted) throw new BuildError("the build was canceled");
      if (res.code !== 0) throw new BuildError(`The command '${s.command.join(" ")}' returned a non-zero code: ${res.code}`);
    } finally {
      s.signal.removeEventListener("abort", onAbort);
    }
    // As docker commit: VM mode reads the layer in the engine machine (core/rootfs-helper.ts).
    const layerTar = await spoolLayerTar(containers.rootfsHelpers, containers.get(id), join(containers.containerDir(""), "..", "tmp"));
    const res = await call(() => images.commit({ containerId: id, configJson: JSON.stringify(s.config), createdBy: s.createdBy, layerTar: layerTar ?? "" })).finally(
      () => layerTar && rmSync(layerTar, { force: true }),
    );
    ok = true;
    return res.id;
  } finally {
    if (s.forceRm || (ok && s.rm)) {
      await containers.remove(id, { force: true, volumes: true });
      out.stream(`Removing intermediate container ${shortId(id)}\n`);
    }
  }
}
