/**
 * The machine side's kernel objects, through `ip`: the machine bridge (fixed MAC,
 * gateway and host-alias addresses) and persistent TAP devices that qemu opens by
 * name. One `ip` to look, at most one batch to fix: AttachMachine is on every
 * machine start's path.
 */
import { exec, execOk } from "./exec.ts";
import { writeSysctl } from "./links.ts";

export interface LinkState {
  name: string;
  /** IPv4 addresses, CIDR form. */
  addrs: string[];
  master?: string;
  up: boolean;
}

/** Every host interface with its IPv4 addresses, bridge master and admin state (one `ip` run). */
export async function linkStates(): Promise<Map<string, LinkState>> {
  const out = await execOk(["ip", "-j", "addr", "show"]);
  const links = JSON.parse(out || "[]") as { ifname: string; flags?: string[]; master?: string; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
  return new Map(
    links.map((l) => [
      l.ifname,
      {
        name: l.ifname,
        addrs: (l.addr_info ?? []).filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`),
        master: l.master,
        up: l.flags?.includes("UP") ?? false,
      },
    ]),
  );
}

export interface MachineBridgePlan {
  name: string;
  mac: string;
  /** e.g. "10.213.7.1/24" */
  gatewayCidr: string;
  /** e.g. "10.213.7.254/32" */
  aliasCidr: string;
}

/**
 * Creates or completes the machine bridge and the given TAPs (persistent, so they
 * outlive netd; in the bridge; up). Does nothing when all is in place already.
 */
export async function ensureMachineLinks(bridge: MachineBridgePlan, taps: string[], links: Map<string, LinkState>): Promise<void> {
  const lines: string[] = [];
  const br = links.get(bridge.name);
  // A fixed MAC: a bridge otherwise takes its lowest port's, which changes as machines come and go.
  if (!br) lines.push(`link add ${bridge.name} address ${bridge.mac} type bridge`);
  // The gateway first, so it is the primary address (the source of DHCP replies).
  if (!br?.addrs.includes(bridge.gatewayCidr)) lines.push(`addr add ${bridge.gatewayCidr} dev ${bridge.name}`);
  if (!br?.addrs.includes(bridge.aliasCidr)) lines.push(`addr add ${bridge.aliasCidr} dev ${bridge.name}`);
  if (!br?.up) lines.push(`link set ${bridge.name} up`);
  for (const tap of taps) {
    const t = links.get(tap);
    if (!t) lines.push(`tuntap add dev ${tap} mode tap vnet_hdr`);
    if (t?.master !== bridge.name) lines.push(`link set ${tap} master ${bridge.name}`);
    if (!t?.up) lines.push(`link set ${tap} up`);
  }
  if (lines.length) await execOk(["ip", "-batch", "-"], `${lines.join("\n")}\n`);
  // Packets to host.arcbox.internal are DNATed to 127.0.0.1: this bridge only may route them.
  writeSysctl(`net/ipv4/conf/${bridge.name}/route_localnet`, "1");
}

/** `ip link del`, not `ip tuntap del`: the latter fails while qemu still holds the TAP. */
export async function deleteTap(name: string): Promise<void> {
  await exec(["ip", "link", "del", name]);
}
