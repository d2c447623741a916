/**
 * The container datapath's kernel operations (bridges, veth pairs, network namespaces),
 * as `ip` batches handed to a ToolRunner: on this host in host mode, in the engine
 * machine in VM mode. The same commands either way; only where they run differs.
 * One batch per side, so an attach costs two short-lived processes.
 */
import type { ExecResult } from "./exec.ts";
import type { ToolRunner } from "./tool-runner.ts";

export interface VethPlan {
  veth: string;
  ifname: string;
  bridge: string;
  mac: string;
  cidr: string;
  /** 0 = the kernel's default (1500). */
  mtu: number;
  /** More addresses on the interface: IPv6, link-local ones. */
  extraCidrs?: string[];
}

export interface BridgePlan {
  name: string;
  /**
   * A fixed MAC. A bridge without one takes its lowest port's, so a container joining
   * changes the gateway's MAC under its neighbours, which then lose the gateway (and the
   * embedded DNS on it) until their ARP entries go stale: seconds to a minute.
   */
  mac: string;
  gatewayCidr: string;
  gateway6Cidr?: string;
  /** What is there already (a host listing), when the caller looked; unknown: idempotent steps. */
  existing?: { addrs: string[] };
  /** route_localnet=1: published ports on the host's 127.0.0.1 are DNATed across this bridge. */
  routeLocalnet: boolean;
}

export class Datapath {
  constructor(readonly runner: ToolRunner) {}

  get where(): "host" | "engine" {
    return this.runner.where;
  }

  /** Creates (or completes) a bridge with its gateway address (and IPv6 gateway), up. */
  async ensureBridge(b: BridgePlan): Promise<void> {
    const lines: string[] = [];
    // Without a listing the bridge may exist already ("File exists" is fine) and the
    // address is replaced rather than added (idempotent).
    if (!b.existing) lines.push(`addr replace ${b.gatewayCidr} dev ${b.name}`);
    else if (!b.existing.addrs.includes(b.gatewayCidr)) lines.push(`addr add ${b.gatewayCidr} dev ${b.name}`);
    // Set on every call: also pins the MAC of a bridge made before it was fixed.
    lines.push(`link set ${b.name} address ${b.mac}`);
    lines.push(`link set ${b.name} up`);
    await this.runner.run([
      ...(b.existing ? [] : [{ argv: ["ip", "link", "add", b.name, "address", b.mac, "type", "bridge"], mayFail: true }]),
      { argv: ["ip", "-batch", "-"], stdin: `${lines.join("\n")}\n` },
    ]);
    if (b.gateway6Cidr) {
      // Our own bridge only (the defaults stay as they are); nodad: the gateway answers at once.
      await this.runner.sysctl(`net/ipv6/conf/${b.name}/disable_ipv6`, "0");
      await this.runner.run([{ argv: ["ip", "-6", "addr", "replace", b.gateway6Cidr, "dev", b.name, "nodad"] }]);
    }
    if (b.routeLocalnet) await this.runner.sysctl(`net/ipv4/conf/${b.name}/route_localnet`, "1");
  }

  async deleteLink(name: string): Promise<void> {
    await this.runner.run([{ argv: ["ip", "link", "del", name], mayFail: true }]);
  }

  /** Outside the namespace: the namespace itself (when new) and veth pairs whose peers land in it. */
  async addVeths(netns: string, createNetns: boolean, plans: VethPlan[]): Promise<void> {
    const host: string[] = [];
    if (createNetns) host.push(`netns add ${netns}`);
    for (const p of plans) {
      const mtu = p.mtu ? ` mtu ${p.mtu}` : "";
      host.push(`link add ${p.veth}${mtu} type veth peer name ${p.ifname}${mtu} netns ${netns}`);
      host.push(`link set ${p.veth} master ${p.bridge}`);
      // Hairpin lets a container reach itself through its own published port.
      host.push(`link set ${p.veth} type bridge_slave hairpin on`);
      host.push(`link set ${p.veth} up`);
    }
    if (host.length) await this.runner.run([{ argv: ["ip", "-batch", "-"], stdin: `${host.join("\n")}\n` }]);
  }

  /** Inside the namespace: loopback, addresses, MACs, default route. */
  async configureNetns(netns: string, plans: VethPlan[], defaultGateway: string | undefined, withLoopback: boolean, defaultGateway6?: string): Promise<void> {
    const lines: string[] = [];
    if (withLoopback) lines.push("link set lo up");
    for (const p of plans) {
      lines.push(`link set ${p.ifname} address ${p.mac}`);
      lines.push(`addr add ${p.cidr} dev ${p.ifname}`);
      // nodad: an address IPAM handed out is unique on the bridge, and usable at once.
      for (const c of p.extraCidrs ?? []) lines.push(`addr add ${c} dev ${p.ifname}${c.includes(":") ? " nodad" : ""}`);
      lines.push(`link set ${p.ifname} up`);
    }
    if (defaultGateway) lines.push(`route replace default via ${defaultGateway}`);
    // (the family comes from the gateway address: "-6" is no batch command)
    if (defaultGateway6) lines.push(`route replace default via ${defaultGateway6}`);
    if (lines.length) await this.runner.run([{ argv: ["ip", "-n", netns, "-batch", "-"], stdin: `${lines.join("\n")}\n` }]);
  }

  async createNetnsOnly(netns: string): Promise<void> {
    await this.runner.run([{ argv: ["ip", "netns", "add", netns] }, { argv: ["ip", "-n", netns, "link", "set", "lo", "up"] }]);
  }

  /**
   * Deletes the namespace; the kernel then destroys it and its veths asynchronously.
   * `veths` are deleted first and synchronously when the caller needs them gone now
   * (a failed attach).
   */
  async deleteNetns(netns: string, veths: string[] = []): Promise<void> {
    const lines = [...veths.map((v) => `link del ${v}`), `netns del ${netns}`];
    await this.runner.run([{ argv: ["ip", "-force", "-batch", "-"], stdin: `${lines.join("\n")}\n`, mayFail: true }]);
  }

  async listNetns(): Promise<string[]> {
    const [r] = (await this.runner.run([{ argv: ["ip", "-j", "netns", "list"], mayFail: true }])) as [ExecResult];
    if (r.code !== 0 || !r.stdout.trim()) return [];
    return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
  }

  /** Removes one veth from a live namespace (network disconnect). */
  async deleteVethInNetns(netns: string, ifname: string): Promise<void> {
    await this.runner.run([{ argv: ["ip", "-n", netns, "link", "del", ifname], mayFail: true }]);
  }

  /** Puts veths (back) into their bridges: `[veth, bridge]` pairs. */
  async enslave(pairs: [string, string][]): Promise<void> {
    if (!pairs.length) return;
    const lines = pairs.map(([v, b]) => `link set ${v} master ${b}`);
    await this.runner.run([{ argv: ["ip", "-force", "-batch", "-"], stdin: `${lines.join("\n")}\n`, mayFail: true }]);
  }

  /** Rules inside a container namespace: 127.0.0.11:53 is DNATed to netd's DNS on the gateway. */
  async setNetnsDns(netns: string, dnsTarget: string | undefined, sourceIp: string | undefined): Promise<void> {
    const rules = ["*nat", ":OUTPUT ACCEPT [0:0]", ":POSTROUTING ACCEPT [0:0]", "-F OUTPUT", "-F POSTROUTING"];
    if (dnsTarget && sourceIp) {
      for (const proto of ["udp", "tcp"]) {
        rules.push(`-A OUTPUT -d 127.0.0.11/32 -p ${proto} -m ${proto} --dport 53 -j DNAT --to-destination ${dnsTarget}:53`);
        rules.push(`-A POSTROUTING -s 127.0.0.0/8 -d ${dnsTarget}/32 -p ${proto} -m ${proto} --dport 53 -j SNAT --to-source ${sourceIp}`);
      }
    }
    rules.push("COMMIT");
    // route_localnet (below) would also let a neighbour on the network reach this container's
    // loopback-only services with packets for 127.0.0.0/8 sent to its MAC: only replies
    // (the DNS answers, de-SNATed back to 127.0.0.1) may arrive from outside for 127/8.
    rules.push("*filter", ":INPUT ACCEPT [0:0]", "-F INPUT");
    rules.push("-A INPUT -d 127.0.0.0/8 ! -i lo -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP");
    rules.push("COMMIT", "");
    // route_localnet: a packet from 127.0.0.1 may leave eth0 once DNAT has rewritten it.
    const script = `echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && exec iptables-restore -w --noflush`;
    await this.runner.run([{ argv: ["nsenter", `--net=/run/netns/${netns}`, "sh", "-c", script], stdin: rules.join("\n") }]);
  }
}
