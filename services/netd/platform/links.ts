/**
 * Bridges, veth pairs and network namespaces, through `ip` (one batch per side, so an
 * attach costs two short-lived processes).
 */
import { writeFileSync } from "node:fs";
import { exec, execOk } from "./exec.ts";

export interface HostLink {
  name: string;
  addrs: string[];
}

/** Every interface of the host namespace with its IPv4 addresses (CIDR form). */
export async function listHostLinks(): Promise<HostLink[]> {
  const out = await execOk(["ip", "-j", "-4", "addr", "show"]);
  const links = JSON.parse(out || "[]") as { ifname: string; addr_info?: { local: string; prefixlen: number }[] }[];
  const all = JSON.parse((await execOk(["ip", "-j", "link", "show"])) || "[]") as { ifname: string }[];
  const addrs = new Map(links.map((l) => [l.ifname, (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`)]));
  return all.map((l) => ({ name: l.ifname, addrs: addrs.get(l.ifname) ?? [] }));
}

/** IPv4 destinations routed on the host (to avoid picking a colliding subnet). */
export async function hostRoutes(): Promise<string[]> {
  const out = await execOk(["ip", "-j", "-4", "route", "show", "table", "all"]);
  const routes = JSON.parse(out || "[]") as { dst: string; type?: string }[];
  return routes.filter((r) => r.dst && r.dst !== "default" && (r.type ?? "unicast") === "unicast").map((r) => (r.dst.includes("/") ? r.dst : `${r.dst}/32`));
}

/** Creates (or completes) a bridge with its gateway address (and IPv6 gateway), up. */
export async function ensureBridge(name: string, gatewayCidr: string, existing?: HostLink, gateway6Cidr?: string): Promise<void> {
  const lines: string[] = [];
  if (!existing) lines.push(`link add ${name} type bridge`);
  if (!existing?.addrs.includes(gatewayCidr)) lines.push(`addr add ${gatewayCidr} dev ${name}`);
  lines.push(`link set ${name} up`);
  await execOk(["ip", "-batch", "-"], `${lines.join("\n")}\n`);
  if (gateway6Cidr) {
    // Our own bridge only (the host's defaults stay as they are); nodad: the gateway answers at once.
    writeSysctl(`net/ipv6/conf/${name}/disable_ipv6`, "0");
    await execOk(["ip", "-6", "addr", "replace", gateway6Cidr, "dev", name, "nodad"]);
  }
  // Published ports on 127.0.0.1 are DNATed to containers: loopback sources must be routable here.
  writeSysctl(`net/ipv4/conf/${name}/route_localnet`, "1");
}

export async function deleteLink(name: string): Promise<void> {
  await exec(["ip", "link", "del", name]);
}

export function writeSysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key}`, value);
}

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

/** Host side: the namespace itself (when new) and veth pairs whose peers land in it. */
export async function addVeths(netns: string, createNetns: boolean, plans: VethPlan[]): Promise<void> {
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
  if (host.length) await execOk(["ip", "-batch", "-"], `${host.join("\n")}\n`);
}

/** Inside the namespace: loopback, addresses, MACs, default route. */
export async function configureNetns(netns: string, plans: VethPlan[], defaultGateway: string | undefined, withLoopback: boolean, defaultGateway6?: string): Promise<void> {
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
  if (lines.length) await execOk(["ip", "-n", netns, "-batch", "-"], `${lines.join("\n")}\n`);
}

export async function createNetnsOnly(netns: string): Promise<void> {
  await execOk(["ip", "netns", "add", netns]);
  await execOk(["ip", "-n", netns, "link", "set", "lo", "up"]);
}

/**
 * Deletes the namespace; the kernel then destroys it and its veths asynchronously.
 * `veths` are deleted first and synchronously when the caller needs them gone now
 * (a failed attach).
 */
export async function deleteNetns(netns: string, veths: string[] = []): Promise<void> {
  const lines = [...veths.map((v) => `link del ${v}`), `netns del ${netns}`];
  await exec(["ip", "-force", "-batch", "-"], `${lines.join("\n")}\n`);
}

export async function listNetns(): Promise<string[]> {
  const r = await exec(["ip", "-j", "netns", "list"]);
  if (r.code !== 0 || !r.stdout.trim()) return [];
  return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
}

/** Removes one veth from a live namespace (network disconnect). */
export async function deleteVethInNetns(netns: string, ifname: string): Promise<void> {
  await exec(["ip", "-n", netns, "link", "del", ifname]);
}

/** Rules inside a container namespace: 127.0.0.11:53 is DNATed to netd's DNS on the gateway. */
export async function setNetnsDns(netns: string, dnsTarget: string | undefined, sourceIp: string | undefined): Promise<void> {
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
  await execOk(["nsenter", `--net=/run/netns/${netns}`, "sh", "-c", script], rules.join("\n"));
}
