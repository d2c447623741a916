/** System endpoints: /_ping, /version, /info. */
import { Hono } from "hono";
import { backingFilesystem, hostFacts } from "../../platform/host-facts.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { containerDiskUsage } from "../containers/disk-usage.ts";
import { imageDiskUsage } from "../images/disk-usage.ts";
import { registryConfigJson } from "../images/registry-info.ts";
import { volumeDiskUsage } from "../volumes/disk-usage.ts";
import { ENGINE_COMPAT_VERSION, pingResponse, versionBody } from "../system-info.ts";
import { ENGINE_IS_VM, ENGINE_MACHINE_NAME } from "../../core/engine-target.ts";

/**
 * The OCI runtime binary behind the runtime name "runc", the only name containers take
 * (HostConfig.Runtime): runc on the host; in VM mode what the engine machine's agent
 * chose (crun where it works), "runc" until the machine is up. Named as Docker Desktop
 * names its own, so the name is the same whether the machine is up or not.
 */
async function ociRuntime(deps: DockerApiDeps): Promise<string> {
  if (!ENGINE_IS_VM) return "runc";
  const info = await deps.clients.machines.agentInfo({ machine: ENGINE_MACHINE_NAME }).catch(() => undefined);
  return info?.ociRuntime || "runc";
}

export function systemRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();

  app.get("/_ping", () => pingResponse("GET"));
  app.on("HEAD", "/_ping", () => pingResponse("HEAD"));
  app.get("/version", (c) => c.json(versionBody()));

  app.get("/info", async (c) => {
    const h = hostFacts();
    const counts = deps.containerCounts();
    const [images, registries, runtime] = await Promise.all([deps.clients.images.list({ all: true }), deps.clients.images.registryInfo({}), ociRuntime(deps)]);
    return c.json({
      ID: deps.engineId,
      Containers: counts.total,
      ContainersRunning: counts.running,
      ContainersPaused: counts.paused,
      ContainersStopped: counts.stopped,
      Images: images.items.length,
      Driver: "overlay2",
      DriverStatus: [
        ["Backing Filesystem", backingFilesystem(deps.home.data)],
        ["Supports d_type", "true"],
        ["Using metacopy", "false"],
        ["Native Overlay Diff", "true"],
        ["Layer Format", registries.layerFormat],
      ],
      DockerRootDir: deps.home.data,
      Plugins: { Volume: ["local"], Network: ["bridge", "host", "null"], Authorization: null, Log: ["json-file", "local"] },
      MemoryLimit: true,
      SwapLimit: false,
      KernelMemoryTCP: false,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      OomKillDisable: h.cgroupVersion === "1",
      IPv4Forwarding: true,
      BridgeNfIptables: false,
      BridgeNfIp6tables: false,
      Debug: false,
      NFd: 0,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: "json-file",
      CgroupDriver: "cgroupfs",
      CgroupVersion: h.cgroupVersion,
      NEventsListener: 0,
      KernelVersion: h.kernelVersion,
      OperatingSystem: h.operatingSystem,
      OSVersion: h.osVersion,
      OSType: h.osType,
      Architecture: h.architecture,
      NCPU: h.ncpu,
      MemTotal: h.memTotal,
      IndexServerAddress: "https://index.docker.io/v1/",
      RegistryConfig: registryConfigJson(registries),
      GenericResources: null,
      HttpProxy: process.env.HTTP_PROXY ?? "",
      HttpsProxy: process.env.HTTPS_PROXY ?? "",
      NoProxy: process.env.NO_PROXY ?? "",
      Name: h.hostname,
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: ENGINE_COMPAT_VERSION,
      Runtimes: { runc: { path: runtime } },
      DefaultRuntime: "runc",
      Swarm: { NodeID: "", NodeAddr: "", LocalNodeState: "inactive", ControlAvailable: false, Error: "", RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: "",
      InitBinary: "tini",
      ContainerdCommit: { ID: "" },
      RuncCommit: { ID: "" },
      InitCommit: { ID: "" },
      // The guest applies its own default seccomp filter (guest/core/seccomp.ts) unless --privileged.
      SecurityOptions: ["name=seccomp,profile=arcbox-default"],
      DefaultAddressPools: [],
      FirewallBackend: { Driver: "iptables" },
      Warnings: [],
      CDISpecDirs: [],
      Containerd: null,
    });
  });

  // Image part from imaged; containers, volumes and build cache are filled by their owners
  // (containers' writable layers measured where they are).
  app.get("/system/df", async (c) => c.json({ ...(await imageDiskUsage(deps)), Containers: await containerDiskUsage(deps), Volumes: await volumeDiskUsage(deps), BuildCache: [] }));

  return app;
}
