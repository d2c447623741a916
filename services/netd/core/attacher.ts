/**
 * Container attachments: Attach builds a container's network namespace (veth per
 * endpoint, addresses, routes, DNS redirect), its /etc files and published ports;
 * Detach removes all of it. Connect/Disconnect add or remove one endpoint, live or
 * for the container's next Attach. Every step is undone if a later one fails.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../../lib/log.ts";
import type { VethPlan } from "../platform/datapath.ts";
import { containerFilesDir, hostHostname, hostHostsFile, removeContainerFiles, writeAtomic } from "../platform/host-files.ts";
import type { PortReservations } from "../platform/port-reservations.ts";
import { flushUdpFlows } from "../platform/conntrack.ts";
import { resolvConfFor, writeContainerFiles } from "./container-files.ts";
import { allocateIp, allocateIp6, macForIp } from "./ipam.ts";
import { parseIp } from "./ipv4.ts";
import { isLinkLocal6, parseIp6 } from "./ipv6.ts";
import type { AttachmentRecord, EndpointRecord, PendingEndpoint, PortRecord } from "./model.ts";
import { netnsName, netnsPath, vethName, type NetNames } from "./names.ts";
import { NetworkError } from "./network-error.ts";
import { MTU_OPT } from "./bridge-options.ts";
import { newId, type Networks } from "./networks.ts";
import type { NetState } from "./state.ts";

export interface AttachInput {
  containerId: string;
  containerName: string;
  hostname: string;
  domainname: string;
  networkMode: string;
  endpoints: PendingEndpoint[];
  ports: { protocol: string; containerPort: number; hostIp: string; hostPort: number; hostPortEnd: number }[];
  extraHosts: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
}

export class Attacher {
  constructor(
    private readonly state: NetState,
    private readonly names: NetNames,
    private readonly networks: Networks,
    private readonly ports: PortReservations,
    private readonly dataDir: string,
    private readonly log: Logger,
  ) {}

  async attach(input: AttachInput): Promise<AttachmentRecord> {
    if (!/^[0-9a-zA-Z_.-]+$/.test(input.containerId)) throw new NetworkError("invalid_argument", "container_id is required");
    if (this.state.attachments.has(input.containerId)) await this.detach(input.containerId);
    const mode = input.networkMode || "bridge";
    const dir = containerFilesDir(this.dataDir, input.containerId);
    const files = { hostsPath: join(dir, "hosts"), resolvConfPath: join(dir, "resolv.conf"), hostnamePath: join(dir, "hostname") };
    const base: AttachmentRecord = {
      containerId: input.containerId,
      containerName: input.containerName.replace(/^\//, ""),
      hostname: input.hostname || input.containerId.slice(0, 12),
      domainname: input.domainname,
      kind: "netns",
      sharedWith: "",
      netnsName: "",
      netnsPath: "",
      ...files,
      ports: [],
      extraHosts: input.extraHosts,
      dns: input.dns,
      dnsSearch: input.dnsSearch,
      dnsOptions: input.dnsOptions,
    };
    try {
      if (mode === "host") return this.attachHost(base);
      if (mode.startsWith("container:")) return this.attachShared(base, mode.slice("container:".length));
      if (mode === "none") {
        const ns = netnsName(this.names, input.containerId);
        await this.datapath.createNetnsOnly(ns);
        const rec = { ...base, kind: "none" as const, netnsName: ns, netnsPath: netnsPath(ns) };
        writeContainerFiles(this.state.networks, rec, [], true, this.hostGateway());
        this.state.putAttachment(rec);
        return rec;
      }
      return await this.attachBridged(base, mode, input);
    } catch (err) {
      removeContainerFiles(this.dataDir, input.containerId);
      throw err;
    }
  }

  private attachHost(base: AttachmentRecord): AttachmentRecord {
    const rec: AttachmentRecord = { ...base, kind: "host", hostname: base.hostname === base.containerId.slice(0, 12) ? hostHostname() : base.hostname };
    writeAtomic(rec.hostsPath, hostHostsFile());
    writeAtomic(rec.resolvConfPath, resolvConfFor(rec, false));
    writeAtomic(rec.hostnamePath, `${rec.hostname}\n`);
    this.state.putAttachment(rec);
    return rec;
  }

  private attachShared(base: AttachmentRecord, ref: string): AttachmentRecord {
    const target = this.state.findAttachment(ref);
    if (!target || target.kind === "container") throw new NetworkError("failed_precondition", `cannot join network namespace of a non running container: ${ref}`);
    const rec: AttachmentRecord = {
      ...base,
      kind: "container",
      sharedWith: target.containerId,
      netnsName: target.netnsName,
      netnsPath: target.netnsPath,
      hostsPath: target.hostsPath,
      resolvConfPath: target.resolvConfPath,
      hostnamePath: target.hostnamePath,
      hostname: target.hostname,
    };
    this.state.putAttachment(rec);
    return rec;
  }

  private async attachBridged(base: AttachmentRecord, mode: string, input: AttachInput): Promise<AttachmentRecord> {
    const wanted = input.endpoints.length ? input.endpoints : [{ network: mode === "default" ? "bridge" : mode, aliases: [], ipv4Address: "", macAddress: "" }];
    // Connects made while the container was stopped win over the create-time config for
    // the same network (docker-compose disconnects and reconnects with aliases).
    const netId = (ref: string) => this.state.findNetwork(ref === "default" ? "bridge" : ref)?.id ?? ref;
    const pending = this.state.store.pending(input.containerId);
    const requests = wanted.map((w) => pending.find((p) => netId(p.network) === netId(w.network)) ?? w);
    for (const p of pending) if (!requests.some((r) => netId(r.network) === netId(p.network))) requests.push(p);
    const ns = netnsName(this.names, input.containerId);
    const rec: AttachmentRecord = { ...base, netnsName: ns, netnsPath: netnsPath(ns) };
    const endpoints = requests.map((r, i) => this.planEndpoint(rec, r, `eth${i}`, []));
    // A network may set the default host address for published ports (host_binding_ipv4).
    const bindIp = this.state.networks.get(endpoints[0]?.networkId ?? "")?.options["com.docker.network.bridge.host_binding_ipv4"] ?? "";
    // Reserve host ports first: a taken port fails before any kernel object exists.
    const held: PortRecord[] = [];
    try {
      for (const p of input.ports) {
        const protocol = p.protocol === "udp" ? "udp" : "tcp";
        if (!p.containerPort || p.containerPort > 65535) throw new NetworkError("invalid_argument", `invalid container port ${p.containerPort}`);
        // Host addresses end up in iptables rules: only a literal IPv4 address is accepted.
        if (p.hostIp && parseIp(p.hostIp) === undefined) {
          throw new NetworkError("invalid_argument", `invalid host IP ${JSON.stringify(p.hostIp)} for port ${p.containerPort}/${protocol}: only IPv4 addresses are supported`);
        }
        if (p.hostPort > 65535 || p.hostPortEnd > 65535 || (p.hostPortEnd && p.hostPortEnd < p.hostPort))
          throw new NetworkError("invalid_argument", `invalid host port range ${p.hostPort}-${p.hostPortEnd}`);
        const hostIp = p.hostIp || bindIp;
        const hostPort = await this.ports.reserve({ protocol, hostIp, hostPort: p.hostPort, hostPortEnd: p.hostPortEnd }, rec.containerName || rec.containerId.slice(0, 12));
        held.push({ protocol, containerPort: p.containerPort, hostIp: hostIp || "0.0.0.0", hostPort });
      }
      rec.ports = held;
    } catch (err) {
      for (const p of held) this.ports.release(p.protocol, p.hostIp, p.hostPort);
      throw err;
    }
    // Records first, so the firewall (which is computed from them) is programmed while
    // the namespace is being built; both are undone together if either fails.
    this.state.transaction(() => {
      for (const e of endpoints) this.state.putEndpoint(e);
      this.state.putAttachment(rec);
    });
    try {
      if (this.networks.inEngine) await this.prepareEngine(endpoints);
      await Promise.all([this.buildNetns(rec, endpoints, true), held.length ? this.networks.syncFirewall() : undefined]);
    } catch (err) {
      this.state.transaction(() => {
        for (const e of endpoints) this.state.deleteEndpoint(rec.containerId, e.networkId);
        this.state.deleteAttachment(rec.containerId);
      });
      for (const p of held) this.ports.release(p.protocol, p.hostIp, p.hostPort);
      await this.datapath.deleteNetns(
        ns,
        endpoints.map((e) => e.veth),
      );
      if (held.length) await this.networks.syncFirewall().catch(() => undefined);
      throw err;
    }
    this.state.store.deletePending(rec.containerId);
    writeContainerFiles(this.state.networks, rec, endpoints, true, this.hostGateway());
    await flushUdpFlows(held.filter((p) => p.protocol === "udp").map((p) => p.hostPort));
    return rec;
  }

  private planEndpoint(rec: AttachmentRecord, r: PendingEndpoint, ifname: string, alsoUsed: string[]): EndpointRecord {
    // Docker's CLI says "default" for the daemon's default network, which is "bridge".
    const net = this.state.getNetwork(r.network === "default" ? "bridge" : r.network);
    if (net.driver !== "bridge") throw new NetworkError("invalid_argument", `container cannot be disconnected from host network or connected to host network`);
    if (net.isDefault && r.aliases.length) throw new NetworkError("invalid_argument", "network-scoped alias is supported only for containers in user defined networks");
    if (net.isDefault && r.ipv4Address) throw new NetworkError("invalid_argument", "user specified IP address is supported on user defined networks only");
    if (this.state.endpoints.has(`${rec.containerId}/${net.id}`)) throw new NetworkError("permission_denied", `endpoint with name ${rec.containerName} already exists in network ${net.name}`);
    // A MAC address ends up in an `ip` command line: only the canonical form is accepted.
    if (r.macAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(r.macAddress)) throw new NetworkError("invalid_argument", `invalid MAC address ${JSON.stringify(r.macAddress)}`);
    if (net.isDefault && r.ipv6Address) throw new NetworkError("invalid_argument", "user specified IP address is supported on user defined networks only");
    const linkLocalIps = checkLinkLocalIps(r.linkLocalIps ?? []);
    const used = new Set([...this.state.endpointsIn(net.id).map((e) => e.ip), ...alsoUsed]);
    const { ip, prefixLen, gateway } = allocateIp(net, used, r.ipv4Address || undefined);
    const v6 = net.enableIpv6 && net.pools6?.length ? allocateIp6(net, new Set(this.state.endpointsIn(net.id).map((e) => e.ip6 ?? "")), r.ipv6Address || undefined) : undefined;
    if (!v6 && r.ipv6Address) {
      if (parseIp6(r.ipv6Address) === undefined) throw new NetworkError("invalid_argument", `invalid IPv6 address: ${r.ipv6Address}`);
      throw new NetworkError("invalid_argument", `Invalid address ${r.ipv6Address}: It does not belong to any of this network's subnets`);
    }
    return {
      containerId: rec.containerId,
      networkId: net.id,
      endpointId: newId(),
      ip,
      prefixLen,
      gateway,
      mac: r.macAddress || macForIp(ip),
      aliases: r.aliases,
      veth: vethName(this.names),
      ifname,
      ...(v6 ? { ip6: v6.ip, prefixLen6: v6.prefixLen, gateway6: v6.gateway } : {}),
      ...(linkLocalIps.length ? { linkLocalIps } : {}),
      ...(r.links?.length && !net.isDefault ? { links: r.links } : {}),
    };
  }

  /** Kernel side: namespace (when new), veths, addresses, default route, DNS redirect. */
  private async buildNetns(rec: AttachmentRecord, endpoints: EndpointRecord[], fresh: boolean): Promise<void> {
    const nets = endpoints.map((e) => this.state.networks.get(e.networkId)!);
    const plans: VethPlan[] = endpoints.map((e, i) => ({
      veth: e.veth,
      ifname: e.ifname,
      bridge: nets[i].bridge,
      mac: e.mac,
      cidr: `${e.ip}/${e.prefixLen}`,
      mtu: Number(nets[i].options[MTU_OPT] ?? 0),
      extraCidrs: [...(e.ip6 ? [`${e.ip6}/${e.prefixLen6}`] : []), ...(e.linkLocalIps ?? []).map((a) => (a.includes(":") ? `${a}/64` : `${a}/16`))],
    }));
    await this.datapath.addVeths(rec.netnsName, fresh, plans);
    const all = fresh ? endpoints : [...this.state.endpointsOf(rec.containerId), ...endpoints];
    const hasRoute = !fresh && this.state.endpointsOf(rec.containerId).some((e) => !this.state.networks.get(e.networkId)?.internal);
    const routed = hasRoute ? undefined : endpoints.find((_e, i) => !nets[i].internal);
    const dnsEp = all.find((e) => !this.state.networks.get(e.networkId)?.isDefault);
    const hadDns = !fresh && this.state.endpointsOf(rec.containerId).some((e) => !this.state.networks.get(e.networkId)?.isDefault);
    // Addresses and the DNS redirect are independent once the namespace exists.
    // The IPv6 default route follows the IPv4 one's choice (Docker: the same endpoint's gateway).
    const routed6 = hasRoute ? undefined : endpoints.find((e, i) => !nets[i].internal && e.ip6);
    await Promise.all([
      this.datapath.configureNetns(rec.netnsName, plans, routed?.gateway, fresh, routed6?.gateway6),
      dnsEp && !hadDns ? this.datapath.setNetnsDns(rec.netnsName, this.dnsAddress(dnsEp), dnsEp.ip) : undefined,
    ]);
  }

  async detach(containerId: string): Promise<void> {
    this.state.store.deletePending(containerId);
    const rec = this.state.attachments.get(containerId);
    if (!rec) return;
    if (rec.kind === "netns" || rec.kind === "none") await this.datapath.deleteNetns(rec.netnsName);
    for (const p of rec.ports) this.ports.release(p.protocol, p.hostIp, p.hostPort);
    this.state.transaction(() => {
      for (const e of this.state.endpointsOf(containerId)) this.state.deleteEndpoint(containerId, e.networkId);
      this.state.deleteAttachment(containerId);
    });
    if (rec.kind !== "container") removeContainerFiles(this.dataDir, containerId);
    if (rec.ports.length) await this.networks.syncFirewall();
    await flushUdpFlows(rec.ports.filter((p) => p.protocol === "udp").map((p) => p.hostPort));
  }

  async connect(containerId: string, containerName: string, r: PendingEndpoint): Promise<EndpointRecord | undefined> {
    const net = this.state.getNetwork(r.network);
    const rec = this.state.attachments.get(containerId);
    if (!rec) {
      // Not running: remembered for its next Attach (Docker keeps it in the container's config).
      if (net.driver !== "bridge") throw new NetworkError("invalid_argument", "container cannot be disconnected from host network or connected to host network");
      this.state.store.putPending(containerId, { ...r, network: net.id });
      return undefined;
    }
    if (rec.kind !== "netns") throw new NetworkError("invalid_argument", "container sharing network namespace with another container or host cannot be connected to any other network");
    const ifname = `eth${nextIfIndex(this.state.endpointsOf(containerId))}`;
    const ep = this.planEndpoint({ ...rec, containerName: containerName || rec.containerName }, { ...r, network: net.id }, ifname, []);
    try {
      if (this.networks.inEngine) await this.prepareEngine([ep]);
      await this.buildNetns(rec, [ep], false);
    } catch (err) {
      await this.datapath.deleteVethInNetns(rec.netnsName, ifname);
      throw err;
    }
    this.state.putEndpoint(ep);
    writeContainerFiles(this.state.networks, rec, this.state.endpointsOf(containerId), false, this.hostGateway());
    return ep;
  }

  async disconnect(containerId: string, network: string, force: boolean): Promise<void> {
    const net = this.state.getNetwork(network);
    const rec = this.state.attachments.get(containerId);
    const ep = this.state.endpoints.get(`${containerId}/${net.id}`);
    if (!rec) {
      // Not running: apid checked the container's config; only a pending connect is ours to drop.
      this.state.store.deletePending(containerId, net.id);
      return;
    }
    if (!ep) {
      if (force) return;
      throw new NetworkError("permission_denied", `container ${containerId.slice(0, 12)} is not connected to network ${net.name}`);
    }
    await this.datapath.deleteVethInNetns(rec.netnsName, ep.ifname);
    await this.datapath.deleteLink(ep.veth);
    this.state.deleteEndpoint(containerId, net.id);
    writeContainerFiles(this.state.networks, rec, this.state.endpointsOf(containerId), false, this.hostGateway());
    if (rec.ports.length) await this.networks.syncFirewall();
  }

  /** After a restart: drop namespaces nobody owns, re-hold published ports. */
  async reconcile(): Promise<void> {
    const owned = new Set([...this.state.attachments.values()].map((a) => a.netnsName).filter(Boolean));
    for (const ns of await this.datapath.listNetns()) {
      if (ns.startsWith(this.names.netnsPrefix) && !owned.has(ns)) {
        this.log.info("removing leftover netns", { ns });
        await this.datapath.deleteNetns(ns);
      }
    }
    await this.datapath.enslave([...this.state.endpoints.values()].map((e) => [e.veth, this.state.networks.get(e.networkId)?.bridge ?? ""]));
    for (const a of this.state.attachments.values()) {
      if (a.kind === "netns" && !this.networks.inEngine && !existsSync(a.netnsPath)) this.log.warn("attachment lost its namespace (host rebooted?)", { container: a.containerId });
      for (const p of a.ports) {
        await this.ports
          .reserve({ protocol: p.protocol, hostIp: p.hostIp, hostPort: p.hostPort, hostPortEnd: 0 }, a.containerName)
          .catch((err) => this.log.warn("could not re-hold published port", { err: String(err) }));
      }
    }
  }

  /** Tears every namespace down (used only when the daemon stops with no attachments). */
  async removeAllNetns(): Promise<void> {
    for (const ns of await this.datapath.listNetns()) if (ns.startsWith(this.names.netnsPrefix)) await this.datapath.deleteNetns(ns);
  }

  private get datapath() {
    return this.networks.datapath;
  }

  /**
   * VM mode, before the namespace is built: the networks' bridges in the engine machine
   * and its firewall (a rebooted machine has neither), and the host's routes to it.
   */
  private async prepareEngine(endpoints: EndpointRecord[]): Promise<void> {
    for (const id of new Set(endpoints.map((e) => e.networkId))) await this.networks.ensureInEngine(this.state.networks.get(id)!);
    await Promise.all([this.networks.syncEngineFirewall(), this.networks.syncEngineRoutes()]);
  }

  /**
   * Where a container's 127.0.0.11 goes: netd's DNS on the network's gateway; in VM mode
   * netd's DNS on the machine gateway (the gateway is the engine machine's), reached
   * without the machine's NAT so netd sees the asking container's own address.
   */
  private dnsAddress(ep: EndpointRecord): string {
    return (this.networks.inEngine && this.state.machineNet?.gateway) || ep.gateway;
  }

  /**
   * What `host-gateway` (e.g. --add-host host.docker.internal:host-gateway) means: the
   * network's gateway on this host; in VM mode the gateway is the engine machine's, so
   * the machine bridge's host alias (host.arcbox.internal, DNATed to the host's 127.0.0.1).
   */
  private hostGateway(): string | undefined {
    return this.networks.inEngine ? this.state.machineNet?.hostAlias : undefined;
  }
}

/** EndpointSettings.IPAMConfig.LinkLocalIPs: 169.254.0.0/16 or fe80::/10 addresses only (dockerd's check). */
function checkLinkLocalIps(ips: string[]): string[] {
  const ok = (a: string) => {
    const v4 = parseIp(a);
    if (v4 !== undefined) return v4 >>> 16 === 0xa9fe;
    const v6 = parseIp6(a);
    return v6 !== undefined && isLinkLocal6(v6);
  };
  if (ips.some((a) => !ok(a))) throw new NetworkError("invalid_argument", `Invalid link-local IP address: [${ips.join(" ")}]`);
  return ips;
}

function nextIfIndex(eps: EndpointRecord[]): number {
  const used = new Set(eps.map((e) => Number(e.ifname.slice(3))));
  let i = 0;
  while (used.has(i)) i++;
  return i;
}
