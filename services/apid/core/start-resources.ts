/**
 * What a container needs from other services before the runtime creates it: its network
 * (netd.Attach, or local /etc files for "none" and "host") and its volumes (fsd.Mount).
 */
import type { ArcboxError } from "../../../lib/errors.ts";
import { call, type Backends } from "./backends.ts";
import { ContainerError } from "./container-error.ts";
import { ENGINE_IS_VM } from "./engine-target.ts";
import type { ContainerRecord, NetworkInfo } from "./container-record.ts";
import type { LinkedView } from "./legacy-links.ts";
import { networkInfoOf } from "./network-endpoints.ts";
import { writeLocalNetworkFiles } from "./network-files.ts";
import { HOST_MACHINE, hostnameOf } from "./runtime-spec.ts";

/** A binding's HostPort: "" (any free port), "8080", or a range "8000-8010" netd picks from. */
function hostPortRange(spec: string | null | undefined): { hostPort: number; hostPortEnd: number } {
  const m = /^(\d+)(?:-(\d+))?$/.exec(spec?.trim() || "0");
  const start = Number(m?.[1]);
  const end = m?.[2] ? Number(m[2]) : 0;
  if (!m || start > 65535 || end > 65535 || (end && end < start)) throw new ContainerError("invalid_argument", `invalid host port: ${JSON.stringify(spec)}`);
  return { hostPort: start, hostPortEnd: end };
}

/** The container's network: local files for none/host, else netd.Attach. */
export async function attachNetwork(backends: Backends, rec: ContainerRecord, mode: string, dir: string, linked: LinkedView = { env: [], hosts: [] }): Promise<NetworkInfo> {
  if (mode === "none" || mode === "host") return writeLocalNetworkFiles(dir, mode, hostnameOf(rec), rec.hostConfig);
  // VM mode: netd builds the namespace in the engine machine but never boots it (a boot
  // needs netd itself): the machine is booted first. Its serial relay runs netd's
  // commands, so the agent need not be up yet (the runtime create waits for it).
  if (ENGINE_IS_VM) await call(() => backends.machines.ensureRunning({ machine: HOST_MACHINE }));
  const h = rec.hostConfig;
  // Config.MacAddress (before API 1.44) is the address on the container's own network mode.
  const configMac = (network: string) => (network === mode ? String(rec.config.MacAddress ?? "") : "");
  const colons = (mac: string) => mac.replaceAll("-", ":").toLowerCase();
  const endpoints = Object.entries(rec.endpointsConfig ?? {}).map(([network, cfg]) => ({
    network,
    aliases: cfg?.Aliases ?? [],
    ipv4Address: cfg?.IPAMConfig?.IPv4Address ?? "",
    ipv6Address: cfg?.IPAMConfig?.IPv6Address ?? "",
    linkLocalIps: cfg?.IPAMConfig?.LinkLocalIPs ?? [],
    links: cfg?.Links ?? [],
    macAddress: colons(cfg?.MacAddress || configMac(network)),
  }));
  if (!endpoints.length) endpoints.push({ network: mode, aliases: [], ipv4Address: "", ipv6Address: "", linkLocalIps: [], links: [], macAddress: colons(configMac(mode)) });
  const ports = Object.entries(h.PortBindings ?? {}).flatMap(([key, bindings]) => {
    const [port, proto = "tcp"] = key.split("/");
    return (bindings?.length ? bindings : [{}]).map((b) => ({ protocol: proto, containerPort: Number(port), hostIp: b.HostIp ?? "", ...hostPortRange(b.HostPort) }));
  });
  if (h.PublishAllPorts) {
    for (const key of Object.keys(rec.config.ExposedPorts ?? {})) {
      const [port, proto = "tcp"] = key.split("/");
      if (!ports.some((p) => p.containerPort === Number(port) && p.protocol === proto)) ports.push({ protocol: proto, containerPort: Number(port), hostIp: "", hostPort: 0, hostPortEnd: 0 });
    }
  }
  const res = await call(() =>
    backends.networks.attach({
      containerId: rec.id,
      containerName: rec.name.slice(1),
      hostname: hostnameOf(rec),
      networkMode: mode,
      endpoints,
      ports,
      // Links' lines come after the user's ExtraHosts, as in Docker's /etc/hosts.
      extraHosts: [...(h.ExtraHosts ?? []), ...linked.hosts],
      dns: h.Dns ?? [],
      dnsSearch: h.DnsSearch ?? [],
      dnsOptions: h.DnsOptions ?? [],
      domainname: rec.config.Domainname ?? "",
    }),
  ).catch((err: ArcboxError) => {
    throw new ContainerError(
      err.code === "not_implemented" || err.code === "unavailable" ? "unavailable" : err.code,
      `network ${mode}: ${err.message}${err.code === "not_implemented" ? " (use --network none or host)" : ""}`,
      { cause: err },
    );
  });
  return { ...networkInfoOf(res), ...(linked.env.length ? { linkEnv: linked.env } : {}) };
}

/** fsd.Mount for each volume mount, in parallel; fills in names and host paths. */
export async function mountVolumes(backends: Backends, rec: ContainerRecord): Promise<void> {
  const volumes = rec.mounts.filter((m) => m.Type === "volume");
  if (!volumes.length) return;
  await Promise.all(
    volumes.map(async (m) => {
      const res = await call(() =>
        backends.volumes.mount({
          containerId: rec.id,
          name: m.Name ?? "",
          target: m.Destination,
          imageLowerDirs: rec.rootfs.lowerDirs,
          noCopy: !!m.options?.includes("nocopy"),
          driver: m.Driver ?? "local",
        }),
      );
      // Keep the name so a restart reuses the same anonymous volume.
      m.Name = res.name;
      m.Source = res.source;
      if (res.machineTmpfs === undefined) delete m.machineTmpfs;
      else m.machineTmpfs = res.machineTmpfs;
    }),
  );
}
