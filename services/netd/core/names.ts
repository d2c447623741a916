/**
 * Names of the kernel objects netd creates. Every name carries a short tag derived
 * from the ArcBox home, so two daemons on one host (tests, a dev daemon) never touch
 * each other's bridges, namespaces or iptables chains, and leftovers are recognisable.
 */
import { createHash, randomBytes } from "node:crypto";

export interface NetNames {
  /** 6 hex chars identifying this daemon's home. */
  tag: string;
  defaultBridge: string;
  /** Bridge of this home's machines (VMs), separate from every container bridge. */
  machineBridge: string;
  /** Prefix of every bridge/veth interface of this daemon. */
  ifPrefix: string;
  /** Prefix of every network namespace name (under /run/netns). */
  netnsPrefix: string;
  chains: { nat: string; dnat: string; forward: string; input: string };
}

export function netNames(homeRoot: string): NetNames {
  const tag = createHash("sha256").update(homeRoot).digest("hex").slice(0, 6);
  // The system daemon keeps the friendly name; other homes get tagged ones (max 15 chars).
  const isDefault = homeRoot === "/var/lib/arcbox";
  return {
    tag,
    defaultBridge: isDefault ? "arcbox0" : `ab${tag}b0`,
    machineBridge: `ab${tag}m0`,
    ifPrefix: `ab${tag}`,
    netnsPrefix: `arcbox-${tag}-`,
    chains: {
      nat: `ARCBOX-POST-${tag}`,
      dnat: `ARCBOX-DNAT-${tag}`,
      forward: `ARCBOX-FWD-${tag}`,
      input: `ARCBOX-IN-${tag}`,
    },
  };
}

/** Bridge of a user-defined network: prefix + 5 hex of the network ID (<= 15 chars). */
export const userBridgeName = (n: NetNames, networkId: string) => `${n.ifPrefix}n${networkId.slice(0, 6)}`;
/**
 * Host end of a container's veth: prefix + 6 random hex. Random, not derived from the
 * container: the kernel destroys a deleted namespace (and its veths) asynchronously, and
 * a quick re-attach must not trip over the old name.
 */
export function vethName(n: NetNames): string {
  return `${n.ifPrefix}v${randomBytes(3).toString("hex")}`;
}
export const netnsName = (n: NetNames, containerId: string) => `${n.netnsPrefix}${containerId.slice(0, 16)}`;
export const netnsPath = (name: string) => `/run/netns/${name}`;

/** A machine's TAP device: prefix + "t" + 6 hex of the machine name (stable across restarts). */
export function tapName(n: NetNames, machine: string, salt = 0): string {
  return `${n.ifPrefix}t${createHash("sha256").update(`${machine}/${salt}`).digest("hex").slice(0, 6)}`;
}

/**
 * A machine's MAC: derived from the home's tag and the machine name, so the same machine
 * always gets the same one (its DHCP lease is keyed by it); locally administered, unicast.
 */
export function machineMac(n: NetNames, machine: string): string {
  return macFromSeed(`${n.tag}/machine/${machine}`);
}

/** The machine bridge's own MAC, fixed so it does not change as TAPs come and go. */
export const machineBridgeMac = (n: NetNames) => macFromSeed(`${n.tag}/machine-bridge`);

function macFromSeed(seed: string): string {
  const b = createHash("sha256").update(seed).digest();
  b[0] = (b[0] & 0xfc) | 0x02;
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Interfaces of the machine side (bridge, TAPs): netd's container reconcile leaves them to the machine side. */
export const isMachineLink = (n: NetNames, name: string) => name === n.machineBridge || name.startsWith(`${n.ifPrefix}t`);
