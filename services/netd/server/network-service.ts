/** Connect handlers of netd: translation between protobuf messages and the core, nothing else. */
import type { ConnectRouter } from "@connectrpc/connect";
import { NetworkService } from "../../../proto/gen/arcbox/networks/v1/networks_pb.ts";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AttachResponseSchema, EndpointSchema, NetworkSchema } from "../../../proto/gen/arcbox/networks/v1/networks_pb.ts";
import type { NetDaemon } from "../core/net-daemon.ts";
import type { AttachmentRecord, EndpointRecord, NetworkRecord } from "../core/model.ts";

export function networkRoutes(d: NetDaemon) {
  return (router: ConnectRouter) =>
    router.service(NetworkService, {
      list: () => {
        const networks = d.listNetworks().map((n) => networkMsg(d, n));
        return { items: networks.map((n) => ({ id: n.id, name: n.name })), networks };
      },
      inspect: (req) => ({ network: networkMsg(d, d.state.getNetwork(req.network)) }),
      create: (req) =>
        d.createNetwork({
          name: req.name,
          driver: req.driver,
          internal: req.internal,
          attachable: req.attachable,
          enableIpv6: req.enableIpv6,
          ipamDriver: req.ipamDriver,
          pools: req.ipam.map((p) => ({ subnet: p.subnet, gateway: p.gateway, ipRange: p.ipRange, auxAddresses: p.auxAddresses })),
          options: req.options,
          labels: req.labels,
          ipamOptions: req.ipamOptions,
        }),
      remove: async (req) => {
        await d.removeNetwork(req.network);
        return {};
      },
      prune: async (req) => ({ deleted: await d.pruneNetworks(req.labels, req.notLabels, Number(req.untilUnix)) }),
      attach: async (req) => {
        const rec = await d.attach({
          containerId: req.containerId,
          containerName: req.containerName,
          hostname: req.hostname,
          domainname: req.domainname,
          networkMode: req.networkMode,
          endpoints: req.endpoints.map((e) => ({
            network: e.network,
            aliases: e.aliases,
            ipv4Address: e.ipv4Address,
            macAddress: e.macAddress,
            ipv6Address: e.ipv6Address,
            linkLocalIps: e.linkLocalIps,
            links: e.links,
          })),
          ports: req.ports.map((p) => ({ protocol: p.protocol, containerPort: p.containerPort, hostIp: p.hostIp, hostPort: p.hostPort, hostPortEnd: p.hostPortEnd })),
          extraHosts: req.extraHosts,
          dns: req.dns,
          dnsSearch: req.dnsSearch,
          dnsOptions: req.dnsOptions,
        });
        return attachmentMsg(d, rec);
      },
      detach: async (req) => {
        await d.detach(req.containerId);
        return {};
      },
      connect: async (req) => {
        const e = req.endpoint;
        const ep = await d.connect(req.containerId, req.containerName, {
          network: e?.network ?? "",
          aliases: e?.aliases ?? [],
          ipv4Address: e?.ipv4Address ?? "",
          macAddress: e?.macAddress ?? "",
          ipv6Address: e?.ipv6Address ?? "",
          linkLocalIps: e?.linkLocalIps ?? [],
          links: e?.links ?? [],
        });
        return ep ? { endpoint: endpointMsg(d, ep) } : {};
      },
      disconnect: async (req) => {
        await d.disconnect(req.containerId, req.network, req.force);
        return {};
      },
      getAttachment: (req) => {
        const rec = d.state.attachments.get(req.containerId);
        return rec ? { attachment: attachmentMsg(d, rec) } : {};
      },
    });
}

function networkMsg(d: NetDaemon, n: NetworkRecord): MessageInitShape<typeof NetworkSchema> {
  return {
    id: n.id,
    name: n.name,
    driver: n.driver,
    scope: "local",
    created: n.created,
    internal: n.internal,
    attachable: n.attachable,
    enableIpv6: n.enableIpv6,
    ipamDriver: n.ipamDriver,
    ipam: [...n.pools, ...(n.pools6 ?? [])].map((p) => ({
      subnet: p.subnet,
      gateway: p.gateway,
      ipRange: p.ipRange ?? "",
      auxAddresses: p.auxAddresses ?? {},
      implicitGateway: p.implicitGateway ?? false,
    })),
    options: n.options,
    labels: n.labels,
    ipamOptions: n.ipamOptions,
    bridgeName: n.bridge,
    containers: endpointsOfNetwork(d, n),
  };
}

function endpointsOfNetwork(d: NetDaemon, n: NetworkRecord) {
  const eps = d.state.endpointsIn(n.id).map((e) => ({
    containerId: e.containerId,
    name: d.state.attachments.get(e.containerId)?.containerName ?? "",
    endpointId: e.endpointId,
    macAddress: e.mac,
    ipv4Address: `${e.ip}/${e.prefixLen}`,
    ipv6Address: e.ip6 ? `${e.ip6}/${e.prefixLen6}` : "",
  }));
  // host/none list their containers too (Docker shows them in network inspect).
  if (n.driver === "host" || n.driver === "null") {
    const kind = n.driver === "host" ? "host" : "none";
    for (const a of d.state.attachments.values()) {
      if (a.kind === kind) eps.push({ containerId: a.containerId, name: a.containerName, endpointId: "", macAddress: "", ipv4Address: "", ipv6Address: "" });
    }
  }
  return eps;
}

function endpointMsg(d: NetDaemon, e: EndpointRecord): MessageInitShape<typeof EndpointSchema> {
  const net = d.state.networks.get(e.networkId);
  const a = d.state.attachments.get(e.containerId);
  const dnsNames = net?.isDefault ? [] : [...new Set([a?.containerName ?? "", ...e.aliases, e.containerId.slice(0, 12)].filter(Boolean))];
  return {
    networkId: e.networkId,
    networkName: net?.name ?? "",
    endpointId: e.endpointId,
    ipAddress: e.ip,
    ipPrefixLen: e.prefixLen,
    gateway: e.gateway,
    macAddress: e.mac,
    aliases: e.aliases,
    dnsNames,
    globalIpv6Address: e.ip6 ?? "",
    globalIpv6PrefixLen: e.ip6 ? (e.prefixLen6 ?? 0) : 0,
    ipv6Gateway: e.gateway6 ?? "",
    linkLocalIps: e.linkLocalIps ?? [],
  };
}

function attachmentMsg(d: NetDaemon, rec: AttachmentRecord): MessageInitShape<typeof AttachResponseSchema> {
  const owner = rec.kind === "container" ? rec.sharedWith : rec.containerId;
  return {
    netnsPath: rec.kind === "host" ? "" : rec.netnsPath,
    hostNetwork: rec.kind === "host",
    hostsPath: rec.hostsPath,
    resolvConfPath: rec.resolvConfPath,
    hostnamePath: rec.hostnamePath,
    endpoints: d.state.endpointsOf(owner).map((e) => endpointMsg(d, e)),
    ports: rec.ports.map((p) => ({ protocol: p.protocol, containerPort: p.containerPort, hostIp: p.hostIp, hostPort: p.hostPort })),
  };
}
