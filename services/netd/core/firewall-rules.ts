/**
 * The host iptables rules netd wants, computed from its state alone. They live in
 * chains of our own (see names.ts) that are rewritten whole on every change, so a
 * restart or a crash can never leave a stale rule behind.
 */
import type { AttachmentRecord, EndpointRecord, MachineLeaseRecord, MachineNetRecord, NetworkRecord } from "./model.ts";
import type { NetNames } from "./names.ts";
import { boolOption, ICC_OPT, MASQUERADE_OPT } from "./bridge-options.ts";

export interface FirewallState {
  networks: NetworkRecord[];
  endpoints: EndpointRecord[];
  attachments: AttachmentRecord[];
  /** The machine bridge and its machines, when any machine is attached. */
  machineNet?: MachineNetRecord;
  machines?: MachineLeaseRecord[];
  /** VM mode: the container bridges are in the engine machine, not on this host. */
  containersInEngine?: boolean;
}

export interface ChainRules {
  nat: string[];
  filter: string[];
}

/** Jumps from the builtin chains into ours: [table, builtin chain, match+target]. */
export function jumpRules(n: NetNames): [string, string, string][] {
  return [
    ["nat", "POSTROUTING", `-j ${n.chains.nat}`],
    ["nat", "PREROUTING", `-m addrtype --dst-type LOCAL -j ${n.chains.dnat}`],
    ["nat", "OUTPUT", `-m addrtype --dst-type LOCAL -j ${n.chains.dnat}`],
    ["filter", "FORWARD", `-j ${n.chains.forward}`],
    ["filter", "INPUT", `-j ${n.chains.input}`],
  ];
}

export function firewallRules(n: NetNames, s: FirewallState): ChainRules {
  // VM mode: the container bridges are the engine machine's (engineFirewallRules); the
  // host keeps the published ports, DNATed to container addresses routed via the machine.
  const bridges = s.containersInEngine ? [] : containerBridges(s);
  const { nat, filter } = s.containersInEngine ? { nat: [], filter: [] } : bridgeRules(n, bridges, true);
  const post = n.chains.nat;
  const dnat = n.chains.dnat;
  const fwd = n.chains.forward;

  const netById = new Map(s.networks.map((x) => [x.id, x]));
  for (const a of s.attachments) {
    if (a.kind !== "netns" || a.ports.length === 0) continue;
    const ep = publishingEndpoint(a.containerId, s.endpoints, netById);
    if (!ep) continue;
    const bridge = s.containersInEngine ? s.machineNet?.bridge : netById.get(ep.networkId)!.bridge;
    if (!bridge) continue;
    for (const p of a.ports) {
      const dst = p.hostIp && p.hostIp !== "0.0.0.0" ? ` -d ${p.hostIp}/32` : "";
      nat.push(`-A ${dnat}${dst} -p ${p.protocol} -m ${p.protocol} --dport ${p.hostPort} -j DNAT --to-destination ${ep.ip}:${p.containerPort}`);
      if (!s.containersInEngine) nat.push(`-A ${post} -s ${ep.ip}/32 -d ${ep.ip}/32 -p ${p.protocol} -m ${p.protocol} --dport ${p.containerPort} -j MASQUERADE`);
      filter.push(`-A ${fwd} -d ${ep.ip}/32 ! -i ${bridge} -o ${bridge} -p ${p.protocol} -m ${p.protocol} --dport ${p.containerPort} -j ACCEPT`);
    }
  }

  if (s.machineNet) {
    const dnsGateways = bridges.filter((b) => !b.isDefault).flatMap((b) => b.pools.map((p) => p.gateway));
    const m = machineRules(
      n,
      s.machineNet,
      s.machines ?? [],
      bridges.map((b) => b.bridge),
      dnsGateways,
    );
    nat.push(...m.nat);
    filter.push(...m.filter);
  }

  for (const net of bridges) {
    filter.push(`-A ${fwd} -i ${net.bridge} -j ACCEPT`);
    filter.push(`-A ${fwd} -o ${net.bridge} -j DROP`);
  }
  // The embedded DNS listens on user networks' gateways only (Docker: no DNS on the default bridge).
  for (const net of bridges) filter.push(...hostGuardRules(n.chains.input, net.bridge, net.isDefault ? undefined : net.pools[0]?.gateway));
  return { nat, filter };
}

/**
 * VM mode: the engine machine's own rules for the container bridges that live in it:
 * outbound NAT (container traffic leaves as the machine's address, and the host NATs
 * the machine's in turn), isolation between networks, and forwarding of published
 * ports arriving from the host; DNS queries to netd leave un-NATed. The machine's tables
 * are ArcBox's alone.
 */
export function engineFirewallRules(n: NetNames, s: FirewallState): ChainRules {
  const bridges = containerBridges(s);
  const { nat, filter } = bridgeRules(n, bridges, false);
  // Embedded DNS: containers of user networks ask netd on the machine gateway directly
  // (their namespace DNATs 127.0.0.11 there), with their own address: netd answers by it.
  if (s.machineNet) for (const p of ["udp", "tcp"]) nat.unshift(`-A ${n.chains.nat} -d ${s.machineNet.gateway}/32 -p ${p} -m ${p} --dport 53 -j RETURN`);
  const fwd = n.chains.forward;
  const netById = new Map(s.networks.map((x) => [x.id, x]));
  for (const a of s.attachments) {
    if (a.kind !== "netns" || a.ports.length === 0) continue;
    const ep = publishingEndpoint(a.containerId, s.endpoints, netById);
    const bridge = ep && netById.get(ep.networkId)?.bridge;
    if (!ep || !bridge) continue;
    for (const p of a.ports) filter.push(`-A ${fwd} -d ${ep.ip}/32 ! -i ${bridge} -o ${bridge} -p ${p.protocol} -m ${p.protocol} --dport ${p.containerPort} -j ACCEPT`);
  }
  for (const net of bridges) {
    filter.push(`-A ${fwd} -i ${net.bridge} -j ACCEPT`);
    filter.push(`-A ${fwd} -o ${net.bridge} -j DROP`);
  }
  return { nat, filter };
}

function containerBridges(s: FirewallState): NetworkRecord[] {
  return s.networks.filter((x) => x.driver === "bridge" && x.bridge);
}

/** Outbound NAT, isolation, internal networks, ICC and replies: the same on the host and in the engine machine. */
function bridgeRules(n: NetNames, bridges: NetworkRecord[], onHost: boolean): ChainRules {
  const nat: string[] = [];
  const filter: string[] = [];
  const post = n.chains.nat;
  const fwd = n.chains.forward;
  for (const net of bridges) {
    const masquerade = !net.internal && boolOption(net.options, MASQUERADE_OPT, true);
    for (const pool of net.pools) {
      if (masquerade) nat.push(`-A ${post} -s ${pool.subnet} ! -o ${net.bridge} -j MASQUERADE`);
    }
    // Host loopback clients of published ports: rewrite 127.0.0.1 into a routable source.
    if (onHost) nat.push(`-A ${post} -o ${net.bridge} -m addrtype --src-type LOCAL -j MASQUERADE`);
  }

  // Networks are isolated from each other, as Docker's DOCKER-ISOLATION chains do.
  for (const a of bridges) for (const b of bridges) if (a !== b) filter.push(`-A ${fwd} -i ${a.bridge} -o ${b.bridge} -j DROP`);
  for (const net of bridges.filter((x) => x.internal)) {
    filter.push(`-A ${fwd} -i ${net.bridge} ! -o ${net.bridge} -j DROP`);
    filter.push(`-A ${fwd} -o ${net.bridge} ! -i ${net.bridge} -j DROP`);
  }
  // enable_icc=false: containers of the network cannot talk to each other.
  for (const net of bridges.filter((x) => !boolOption(x.options, ICC_OPT, true))) {
    filter.push(`-A ${fwd} -i ${net.bridge} -o ${net.bridge} -j DROP`);
  }
  for (const net of bridges) filter.push(`-A ${fwd} -o ${net.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
  return { nat, filter };
}

/**
 * INPUT rules that keep the host's own services away from one bridge, for any bridge
 * netd owns (container networks; machine bridges can reuse it):
 *   - The bridge has route_localnet=1 (published ports on 127.0.0.1 are DNATed in the
 *     kernel, and the rewritten packets keep their 127.0.0.1 source). That would also
 *     let anything behind the bridge send to 127.0.0.0/8 through the gateway's MAC
 *     (raw sockets need only NET_RAW, a default capability) and reach host services
 *     bound to loopback (CVE-2020-8558). Only packets of connections the host opened or
 *     DNATed may arrive from the bridge for 127.0.0.0/8, as kube-proxy does.
 *   - `dnsAddress` (the embedded DNS on the gateway) answers only its own bridge: not
 *     host users, not other networks.
 */
export function hostGuardRules(chain: string, bridge: string, dnsAddress?: string): string[] {
  const rules = [`-A ${chain} -d 127.0.0.0/8 -i ${bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`];
  if (dnsAddress) {
    for (const p of ["udp", "tcp"]) rules.push(`-A ${chain} -d ${dnsAddress}/32 ! -i ${bridge} -p ${p} -m ${p} --dport 53 -j DROP`);
  }
  return rules;
}

/** Ports are published on the container's first non-internal network (Docker: the first one). */
export function publishingEndpoint(containerId: string, endpoints: EndpointRecord[], nets: Map<string, NetworkRecord>): EndpointRecord | undefined {
  const mine = endpoints.filter((e) => e.containerId === containerId).sort((a, b) => a.ifname.localeCompare(b.ifname, "en", { numeric: true }));
  return mine.find((e) => !nets.get(e.networkId)?.internal) ?? mine[0];
}

/**
 * The machine bridge: outbound NAT, machines isolated from container bridges, host
 * ports forwarded to machines, host.arcbox.internal (the bridge's second address)
 * DNATed to the host's 127.0.0.1 for machines only, and netd's DNS on the machine
 * gateway answering the machine bridge only. Appended after the container rules:
 * a container's published port wins over the host alias catch-all.
 */
function machineRules(n: NetNames, net: MachineNetRecord, machines: MachineLeaseRecord[], containerBridges: string[], dnsGateways: string[]): ChainRules {
  const { nat: post, dnat, forward: fwd, input } = n.chains;
  const br = net.bridge;
  const nat: string[] = [];
  const filter: string[] = [];
  nat.push(`-A ${post} -s ${net.subnet} ! -o ${br} -j MASQUERADE`);
  // Host loopback clients of forwarded ports, and machines reaching a forwarded port of
  // a machine on the same bridge: the reply must come back through netd's conntrack.
  nat.push(`-A ${post} -o ${br} -m addrtype --src-type LOCAL -j MASQUERADE`);
  nat.push(`-A ${post} -o ${br} -s ${net.subnet} -m conntrack --ctstate DNAT -j MASQUERADE`);
  // A machine forwarding port 53 must not take over netd's own DNS on the gateways.
  const forwards = machines.flatMap((m) => m.ports);
  for (const proto of ["udp", "tcp"] as const) {
    if (!forwards.some((p) => p.protocol === proto && p.hostPort === 53)) continue;
    for (const gw of [net.gateway, ...dnsGateways]) nat.push(`-A ${dnat} -d ${gw}/32 -p ${proto} -m ${proto} --dport 53 -j RETURN`);
  }
  for (const m of machines) {
    for (const p of m.ports) {
      const dst = p.hostIp && p.hostIp !== "0.0.0.0" ? ` -d ${p.hostIp}/32` : "";
      nat.push(`-A ${dnat}${dst} -p ${p.protocol} -m ${p.protocol} --dport ${p.hostPort} -j DNAT --to-destination ${m.ip}:${p.port}`);
      filter.push(`-A ${fwd} -d ${m.ip}/32 -o ${br} -p ${p.protocol} -m ${p.protocol} --dport ${p.port} -j ACCEPT`);
    }
  }
  // Machines are the user's own: the host's loopback services are theirs to reach.
  nat.push(`-A ${dnat} -i ${br} -d ${net.hostAlias}/32 -j DNAT --to-destination 127.0.0.1`);
  filter.push(`-A ${fwd} -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
  for (const c of containerBridges) filter.push(`-A ${fwd} -i ${br} -o ${c} -j DROP`, `-A ${fwd} -i ${c} -o ${br} -j DROP`);
  filter.push(`-A ${fwd} -i ${br} -j ACCEPT`);
  filter.push(`-A ${fwd} -o ${br} -j DROP`);
  // The host's loopback is reachable only through the alias DNAT (not by raw packets for
  // 127.0.0.0/8 sent to the gateway's MAC), and the DNS on the gateway answers this bridge only.
  filter.push(`-A ${input} -d 127.0.0.0/8 -i ${br} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`);
  for (const proto of ["udp", "tcp"]) filter.push(`-A ${input} -d ${net.gateway}/32 ! -i ${br} -p ${proto} -m ${proto} --dport 53 -j DROP`);
  return { nat, filter };
}
