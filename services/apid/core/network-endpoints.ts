/**
 * A container's networks as apid records them: netd's attachment as the record's
 * NetworkInfo (what inspect shows), and the create-time EndpointsConfig that network
 * connect/disconnect keep up to date, so the container comes back on the same networks
 * when it starts again (Docker keeps them in the container's config too).
 */
import { isIPv4, isIPv6 } from "node:net";
import type { AttachResponse } from "../../../proto/gen/arcbox/networks/v1/networks_pb.ts";
import { ContainerError } from "./container-error.ts";
import type { NetworkInfo } from "./container-record.ts";

export function networkInfoOf(res: AttachResponse): NetworkInfo {
  return {
    netnsPath: res.netnsPath,
    hostNetwork: res.hostNetwork,
    hostsPath: res.hostsPath,
    resolvConfPath: res.resolvConfPath,
    hostnamePath: res.hostnamePath,
    endpoints: res.endpoints.map((e) => ({
      networkId: e.networkId,
      networkName: e.networkName,
      endpointId: e.endpointId,
      ipAddress: e.ipAddress,
      ipPrefixLen: e.ipPrefixLen,
      gateway: e.gateway,
      macAddress: e.macAddress,
      aliases: e.aliases,
      globalIpv6Address: e.globalIpv6Address,
      globalIpv6PrefixLen: e.globalIpv6PrefixLen,
      ipv6Gateway: e.ipv6Gateway,
    })),
    ports: res.ports.map((p) => ({ protocol: p.protocol, containerPort: p.containerPort, hostIp: p.hostIp, hostPort: p.hostPort })),
  };
}

type EndpointsConfig = Record<string, unknown>;

const isNetwork = (key: string, net: { id: string; name: string }) => key === net.name || key === net.id || (key === "default" && net.name === "bridge");

/**
 * EndpointsConfig after a connect. An empty config means "the NetworkMode network", so
 * that network is written out first, or the container would lose it.
 */
export function withEndpoint(current: EndpointsConfig, networkMode: string, net: { id: string; name: string }, cfg: unknown): EndpointsConfig {
  const out: EndpointsConfig = { ...current };
  const mode = networkMode === "default" ? "bridge" : networkMode;
  if (!Object.keys(out).length && mode && mode !== net.name && mode !== net.id && !mode.startsWith("container:") && mode !== "host" && mode !== "none") out[mode] = {};
  for (const key of Object.keys(out)) if (isNetwork(key, net)) delete out[key];
  out[net.name] = cfg ?? {};
  return out;
}

/** EndpointsConfig after a disconnect. */
export function withoutEndpoint(current: EndpointsConfig, networkMode: string, net: { id: string; name: string }): EndpointsConfig {
  const mode = networkMode === "default" ? "bridge" : networkMode;
  const out: EndpointsConfig = Object.keys(current).length ? { ...current } : { [mode]: {} };
  for (const key of Object.keys(out)) if (isNetwork(key, net)) delete out[key];
  return out;
}

/**
 * dockerd's create-time check of EndpointsConfig addresses (verifyNetworkingConfig):
 * a static address that does not parse, or is of the wrong family, is a 400 at create.
 * Whether it fits the network is known only when the container starts.
 */
export function checkEndpointAddresses(endpointsConfig: Record<string, unknown>): void {
  for (const cfg of Object.values(endpointsConfig)) {
    const ipam = (cfg as { IPAMConfig?: { IPv4Address?: string | null; IPv6Address?: string | null } } | null)?.IPAMConfig;
    const v4 = ipam?.IPv4Address;
    if (v4 && !isIPv4(v4)) throw new ContainerError("invalid_argument", `invalid IPv4 address: ${v4}`);
    const v6 = ipam?.IPv6Address;
    if (v6 && (isIPv4(v6) || !isIPv6(v6))) throw new ContainerError("invalid_argument", `invalid IPv6 address: ${v6}`);
  }
}
