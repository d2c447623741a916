/**
 * The machine side's kernel objects, through `ip`: the machine bridge (fixed MAC,
 * gateway and host-alias addresses) and persistent TAP devices that qemu opens by name.
 */
import { exec, execOk } from "./exec.ts";
import { writeSysctl, type HostLink } from "./links.ts";

export interface MachineBridgePlan {
  name: string;
  mac: string;
  /** e.g. "10.213.7.1/24" */
  gatewayCidr: string;
  /** e.g. "10.213.7.254/32" */
  aliasCidr: string;
}

/** Creates (or completes) the machine bridge, up, with route_localnet for the host alias. */
export async function ensureMachineBridge(p: MachineBridgePlan, existing?: HostLink): Promise<void> {
  const lines: string[] = [];
  // A fixed MAC: a bridge otherwise takes its lowest port's, which changes as machines come and go.
  if (!existing) lines.push(`link add ${p.name} address ${p.mac} type bridge`);
  // The gateway first, so it is the primary address (the source of DHCP replies).
  if (!existing?.addrs.includes(p.gatewayCidr)) lines.push(`addr add ${p.gatewayCidr} dev ${p.name}`);
  if (!existing?.addrs.includes(p.aliasCidr)) lines.push(`addr add ${p.aliasCidr} dev ${p.name}`);
  lines.push(`link set ${p.name} up`);
  await execOk(["ip", "-batch", "-"], lines.join("\n") + "\n");
  // Packets to host.arcbox.internal are DNATed to 127.0.0.1: this bridge only may route them.
  writeSysctl(`net/ipv4/conf/${p.name}/route_localnet`, "1");
}

/** A persistent TAP (outlives netd; qemu attaches to it by name), in the bridge and up. */
export async function ensureTap(name: string, bridge: string, exists: boolean): Promise<void> {
  const lines: string[] = [];
  if (!exists) lines.push(`tuntap add dev ${name} mode tap vnet_hdr`);
  lines.push(`link set ${name} master ${bridge}`);
  lines.push(`link set ${name} up`);
  await execOk(["ip", "-batch", "-"], lines.join("\n") + "\n");
}

export async function deleteTap(name: string): Promise<void> {
  await exec(["ip", "tuntap", "del", "dev", name, "mode", "tap"]);
}
