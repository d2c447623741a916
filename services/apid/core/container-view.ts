/** Docker-shaped views of a record: `GET /containers/{id}/json` and `GET /containers/json` items. */
import type { ContainerRecord } from "./container-record.ts";
import type { Health } from "./health-monitor.ts";

function stateView(rec: ContainerRecord, health: Health | undefined) {
  const s = rec.state;
  return {
    Status: s.status,
    Running: s.status === "running" || s.status === "paused" || s.status === "restarting",
    Paused: s.status === "paused",
    Restarting: s.status === "restarting",
    OOMKilled: s.oomKilled,
    Dead: s.status === "dead",
    Pid: s.pid,
    ExitCode: s.exitCode,
    Error: s.error,
    StartedAt: s.startedAt,
    FinishedAt: s.finishedAt,
    ...(health ? { Health: health } : {}),
  };
}

function portsMap(rec: ContainerRecord): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const key of Object.keys(rec.config.ExposedPorts ?? {})) out[key] = null;
  if (rec.state.status !== "running" && rec.state.status !== "paused") return out;
  for (const p of rec.network?.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol}`;
    (out[key] ??= []).push({ HostIp: p.hostIp || "0.0.0.0", HostPort: String(p.hostPort) });
  }
  return out;
}

function networksView(rec: ContainerRecord) {
  const networks: Record<string, unknown> = {};
  const mode = String(rec.hostConfig.NetworkMode);
  const alive = rec.state.status === "running" || rec.state.status === "paused";
  const eps = alive ? (rec.network?.endpoints ?? []) : [];
  const blank = (name: string) => ({
    IPAMConfig: null,
    Links: null,
    Aliases: null,
    MacAddress: "",
    DriverOpts: null,
    GwPriority: 0,
    NetworkID: "",
    EndpointID: "",
    Gateway: "",
    IPAddress: "",
    IPPrefixLen: 0,
    IPv6Gateway: "",
    GlobalIPv6Address: "",
    GlobalIPv6PrefixLen: 0,
    DNSNames: null,
    _name: name,
  });
  if (eps.length) {
    for (const e of eps) {
      networks[e.networkName] = {
        ...blank(e.networkName),
        IPAMConfig: ipamConfigOf(rec, e),
        Links: endpointCfg(rec, e)?.Links ?? null,
        Aliases: e.aliases.length ? e.aliases : null,
        MacAddress: e.macAddress,
        NetworkID: e.networkId,
        EndpointID: e.endpointId,
        Gateway: e.gateway,
        IPAddress: e.ipAddress,
        IPPrefixLen: e.ipPrefixLen,
        IPv6Gateway: e.ipv6Gateway ?? "",
        GlobalIPv6Address: e.globalIpv6Address ?? "",
        GlobalIPv6PrefixLen: e.globalIpv6PrefixLen ?? 0,
        DNSNames: [rec.name.slice(1), rec.id.slice(0, 12), ...e.aliases],
      };
    }
  } else if (!mode.startsWith("container:")) {
    const names = Object.keys(rec.endpointsConfig ?? {});
    for (const n of names.length ? names : [mode])
      networks[n] = { ...blank(n), IPAMConfig: ipamConfigOf(rec, { networkName: n, networkId: "" }), Links: endpointCfg(rec, { networkName: n, networkId: "" })?.Links ?? null };
  }
  for (const v of Object.values(networks)) delete (v as Record<string, unknown>)._name;
  return networks;
}

/** The endpoint's IPAMConfig as the user gave it (create or connect), null when none. */
function ipamConfigOf(rec: ContainerRecord, e: { networkName: string; networkId: string }) {
  return endpointCfg(rec, e)?.IPAMConfig ?? null;
}

/** The endpoint settings given at create or connect for this network, if any. */
function endpointCfg(rec: ContainerRecord, e: { networkName: string; networkId: string }) {
  return rec.endpointsConfig?.[e.networkName] ?? rec.endpointsConfig?.[e.networkId];
}

export function inspectView(rec: ContainerRecord, execIds: string[], health?: Health) {
  const primary = rec.state.status === "running" || rec.state.status === "paused" ? rec.network?.endpoints[0] : undefined;
  return {
    Id: rec.id,
    Created: rec.created,
    Path: rec.path,
    Args: rec.args,
    State: stateView(rec, health),
    Image: rec.imageId,
    ResolvConfPath: rec.network?.resolvConfPath ?? "",
    HostnamePath: rec.network?.hostnamePath ?? "",
    HostsPath: rec.network?.hostsPath ?? "",
    LogPath: rec.logPath,
    Name: rec.name,
    RestartCount: rec.restartCount,
    Driver: "overlay2",
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: execIds.length ? execIds : null,
    HostConfig: rec.hostConfig,
    GraphDriver: {
      Name: "overlay2",
      Data: { LowerDir: rec.rootfs.lowerDirs.join(":"), UpperDir: rec.rootfs.upperDir, WorkDir: rec.rootfs.workDir, MergedDir: "" },
    },
    Mounts: mountsView(rec),
    Config: rec.config,
    NetworkSettings: {
      Bridge: "",
      SandboxID: rec.network?.netnsPath ? rec.id : "",
      SandboxKey: rec.network?.netnsPath ?? "",
      Ports: portsMap(rec),
      HairpinMode: false,
      LinkLocalIPv6Address: "",
      LinkLocalIPv6PrefixLen: 0,
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: primary?.endpointId ?? "",
      Gateway: primary?.gateway ?? "",
      GlobalIPv6Address: primary?.globalIpv6Address ?? "",
      GlobalIPv6PrefixLen: primary?.globalIpv6PrefixLen ?? 0,
      IPAddress: primary?.ipAddress ?? "",
      IPPrefixLen: primary?.ipPrefixLen ?? 0,
      IPv6Gateway: primary?.ipv6Gateway ?? "",
      MacAddress: primary?.macAddress ?? "",
      Networks: networksView(rec),
    },
  };
}

function mountsView(rec: ContainerRecord) {
  // dockerd lists HostConfig.Tmpfs (`--tmpfs`) in HostConfig only, not as mount points.
  const tmpfs = rec.hostConfig.Tmpfs ?? {};
  return rec.mounts
    .filter((m) => !(m.Type === "tmpfs" && Object.hasOwn(tmpfs, m.Destination)))
    .map((m) => {
      const { options: _options, machineTmpfs: _machineTmpfs, ...rest } = m;
      return { ...rest, Name: m.Type === "volume" ? m.Name : undefined, Driver: m.Type === "volume" ? m.Driver : undefined };
    });
}

function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s === 1) return "1 second";
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  return `${Math.floor(h / 24 / 7)} weeks`;
}

/** As Docker's State.String(): a running container with a check shows its health. */
export function statusText(rec: ContainerRecord, health?: Health): string {
  const s = rec.state;
  const now = Date.now();
  switch (s.status) {
    case "running":
      if (health) return `Up ${humanDuration(now - Date.parse(s.startedAt))} (${health.Status === "starting" ? "health: starting" : health.Status})`;
      return `Up ${humanDuration(now - Date.parse(s.startedAt))}`;
    case "paused":
      return `Up ${humanDuration(now - Date.parse(s.startedAt))} (Paused)`;
    case "restarting":
      return `Restarting (${s.exitCode}) ${humanDuration(now - Date.parse(s.finishedAt))} ago`;
    case "exited":
      return s.finishedAt.startsWith("0001") ? "Created" : `Exited (${s.exitCode}) ${humanDuration(now - Date.parse(s.finishedAt))} ago`;
    case "removing":
      return "Removal In Progress";
    case "dead":
      return "Dead";
    default:
      return "Created";
  }
}

export function summaryView(rec: ContainerRecord, health?: Health) {
  const ports = (rec.state.status === "running" ? (rec.network?.ports ?? []) : []).map((p) => ({ IP: p.hostIp || "0.0.0.0", PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol }));
  return {
    Id: rec.id,
    Names: [rec.name],
    Image: rec.imageRef,
    ImageID: rec.imageId,
    Command: [rec.path, ...rec.args].map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" "),
    Created: Math.floor(Date.parse(rec.created) / 1000),
    Ports: ports,
    Labels: rec.config.Labels ?? {},
    State: rec.state.status,
    Status: statusText(rec, health),
    HostConfig: { NetworkMode: rec.hostConfig.NetworkMode },
    NetworkSettings: { Networks: networksView(rec) },
    Mounts: mountsView(rec),
  };
}
