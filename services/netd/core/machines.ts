/**
 * Machine networking: one machine bridge per home (its own subnet from netd's pool),
 * a persistent TAP per machine plugged into it, a stable MAC and a reserved address
 * per machine (the lease the DHCP server hands out), forwarded host ports. Records
 * are the truth; the kernel is made to match them on every change and on start.
 */
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import type { Logger } from "../../../lib/log.ts";
import { withHostLock } from "../platform/host-lock.ts";
import { deleteLink, hostRoutes } from "../platform/links.ts";
import { deleteTap, ensureMachineLinks, linkStates, type LinkState } from "../platform/machine-links.ts";
import type { PortReservations } from "../platform/port-reservations.ts";
import { pickSubnet } from "./ipam.ts";
import { cidrContains, cidrLast, formatIp, parseCidr, parseIp } from "./ipv4.ts";
import type { MachineLeaseRecord, MachineNetRecord, MachinePortRecord } from "./model.ts";
import { machineBridgeMac, machineMac, tapName, type NetNames } from "./names.ts";
import { NetworkError } from "./network-error.ts";
import type { Networks } from "./networks.ts";
import type { NetState } from "./state.ts";

/** Machines resolve each other as `<name>` and `<name>.arcbox.local`. */
export const MACHINE_DOMAIN = "arcbox.local";
/** Resolves (for machines) to the bridge's second address, which reaches the host's 127.0.0.1. */
export const HOST_ALIAS_NAME = "host.arcbox.internal";

const MACHINE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;

/** What runs while machines are attached: the DHCP server and DNS on the gateway. */
export interface MachineListeners {
  start(net: MachineNetRecord): Promise<void>;
  stop(): void;
}

export interface MachineAttachment {
  lease: MachineLeaseRecord;
  net: MachineNetRecord;
  prefixLen: number;
}

export class MachineNetworks {
  constructor(
    private readonly state: NetState,
    private readonly names: NetNames,
    private readonly networks: Networks,
    private readonly ports: PortReservations,
    private readonly listeners: MachineListeners,
    private readonly log: Logger,
  ) {}

  /** Idempotent: the same machine always gets the same TAP, MAC and address. */
  async attach(machine: string): Promise<MachineAttachment> {
    validateName(machine);
    // Called at each boot: a booting engine machine has none of its bridges or rules yet.
    if (machine === ENGINE_MACHINE) this.networks.engineApplied.reset();
    const links = await linkStates();
    const fresh = !this.state.machineNet;
    const net = fresh ? await this.createNet(links) : this.state.machineNet!;
    let lease = this.state.machines.get(machine);
    const isNew = !lease;
    try {
      if (!lease) {
        lease = {
          machine,
          mac: machineMac(this.names, machine),
          ip: this.allocateIp(net),
          tap: this.freeTapName(machine),
          createdUnix: Math.floor(Date.now() / 1000),
          clientHostname: "",
          expiresUnix: 0,
          ports: [],
        };
        this.state.putMachine(lease);
      }
      await ensureMachineLinks(this.bridgePlan(net), [lease.tap], links);
      if (isNew || fresh) await this.networks.syncFirewall();
      await this.listeners.start(net);
    } catch (err) {
      // Nothing half-built: a new lease and its TAP go again (and the bridge, if it was new).
      if (isNew && lease) {
        this.state.deleteMachine(machine);
        await deleteTap(lease.tap);
      }
      if (this.state.machines.size === 0) await this.removeNet();
      throw err;
    }
    return { lease, net, prefixLen: parseCidr(net.subnet).prefix };
  }

  /** Removes the machine's TAP, lease and forwarded ports; the bridge goes with the last machine. */
  async detach(machine: string): Promise<void> {
    const lease = this.state.machines.get(machine);
    if (!lease) return;
    for (const p of lease.ports) this.ports.release(p.protocol, p.hostIp || "0.0.0.0", p.hostPort);
    this.state.deleteMachine(machine);
    await deleteTap(lease.tap);
    if (this.state.machines.size === 0) await this.removeNet();
    else await this.networks.syncFirewall();
  }

  /**
   * Replaces the machine's forwarded host ports. Each port is held with a real socket
   * (like a published port) so nothing else on the host takes it; ports that cannot be
   * held are reported and skipped.
   */
  async setPorts(machine: string, wanted: MachinePortRequest[]): Promise<{ ports: MachinePortRecord[]; failed: string[] }> {
    const lease = this.state.machines.get(machine);
    if (!lease) throw new NetworkError("not_found", `machine ${machine} is not attached`);
    const key = (p: MachinePortRecord) => `${p.protocol}/${p.hostIp || "0.0.0.0"}/${p.hostPort}`;
    const normalised = wanted.map((p) => validatePort(p));
    const keep = new Map(lease.ports.map((p) => [key(p), p]));
    const next: MachinePortRecord[] = [];
    const failed: string[] = [];
    for (const p of normalised) {
      const old = keep.get(key(p));
      if (old) {
        keep.delete(key(p));
        next.push(p);
        continue;
      }
      if (next.some((x) => key(x) === key(p))) continue;
      try {
        await this.ports.reserve({ protocol: p.protocol, hostIp: p.hostIp, hostPort: p.hostPort, hostPortEnd: 0 }, machine);
        next.push(p);
      } catch (err) {
        failed.push(err instanceof Error ? err.message : String(err));
      }
    }
    for (const p of keep.values()) this.ports.release(p.protocol, p.hostIp || "0.0.0.0", p.hostPort);
    this.state.putMachine({ ...lease, ports: next });
    await this.networks.syncFirewall();
    return { ports: next, failed };
  }

  /** After a restart: bridge, TAPs and listeners back as recorded; leftovers of ours removed. */
  async reconcile(): Promise<void> {
    const links = await linkStates();
    const taps = new Set([...this.state.machines.values()].map((m) => m.tap));
    for (const name of links.keys()) {
      if (name.startsWith(`${this.names.ifPrefix}t`) && !taps.has(name)) {
        this.log.info("removing leftover machine TAP", { name });
        await deleteTap(name);
      }
    }
    if (this.state.machines.size === 0) {
      // The common start: no machine, nothing to look after (no extra `ip` run).
      if (this.state.machineNet || links.has(this.names.machineBridge)) await this.removeNet();
      return;
    }
    const net = this.state.machineNet ?? (await this.createNet(links));
    await ensureMachineLinks(this.bridgePlan(net), [...taps], links);
    for (const m of this.state.machines.values()) {
      for (const p of m.ports) {
        await this.ports
          .reserve({ protocol: p.protocol, hostIp: p.hostIp, hostPort: p.hostPort, hostPortEnd: 0 }, m.machine)
          .catch((err) => this.log.warn("could not re-hold a machine's forwarded port", { machine: m.machine, err: String(err) }));
      }
    }
    await this.networks.syncFirewall();
    await this.listeners.start(net);
  }

  /** The machine whose lease has this MAC (the DHCP server answers only these). */
  byMac(mac: string): MachineLeaseRecord | undefined {
    const m = mac.toLowerCase();
    for (const l of this.state.machines.values()) if (l.mac === m) return l;
    return undefined;
  }

  /** Records what the DHCP server handed out (client hostname, lease end). */
  noteLease(machine: string, clientHostname: string, expiresUnix: number): void {
    const lease = this.state.machines.get(machine);
    const hostname = clientHostname || lease?.clientHostname || "";
    if (!lease || (lease.clientHostname === hostname && lease.expiresUnix === expiresUnix)) return;
    this.state.putMachine({ ...lease, clientHostname: hostname, expiresUnix });
  }

  /** Whether `ip` is on the machine bridge (the DNS answers such askers as machines). */
  isMachineAddress(ip: string): boolean {
    const net = this.state.machineNet;
    const a = parseIp(ip);
    return !!net && a !== undefined && cidrContains(parseCidr(net.subnet), a);
  }

  /** DNS for machines: other machines by name (also <name>.arcbox.local) and the host alias. */
  lookup(name: string): string[] | undefined {
    const net = this.state.machineNet;
    if (!net) return undefined;
    const n = name.toLowerCase();
    if (n === HOST_ALIAS_NAME) return [net.hostAlias];
    const bare = n.endsWith(`.${MACHINE_DOMAIN}`) ? n.slice(0, -MACHINE_DOMAIN.length - 1) : n;
    for (const m of this.state.machines.values()) if (m.machine.toLowerCase() === bare) return [m.ip];
    return undefined;
  }

  /** Reverse lookup of a machine address: `<name>.arcbox.local`. */
  reverseLookup(ip: string): string | undefined {
    const net = this.state.machineNet;
    if (net && ip === net.hostAlias) return HOST_ALIAS_NAME;
    for (const m of this.state.machines.values()) if (m.ip === ip) return `${m.machine}.${MACHINE_DOMAIN}`;
    return undefined;
  }

  /**
   * Picks the machine subnet under the host-wide lock and brings the bridge up before
   * releasing it, so a parallel daemon sees the route and never picks the same one.
   */
  private createNet(links: Map<string, LinkState>): Promise<MachineNetRecord> {
    return withHostLock(async () => {
      const taken = [...this.networks.takenCidrs(), ...(await hostRoutes()).map((r) => parseCidr(r))];
      const pool = pickSubnet(taken);
      const net: MachineNetRecord = { bridge: this.names.machineBridge, subnet: pool.subnet, gateway: pool.gateway, hostAlias: formatIp(cidrLast(parseCidr(pool.subnet)) - 1) };
      this.state.setMachineNet(net);
      const plan = this.bridgePlan(net);
      try {
        await ensureMachineLinks(plan, [], links);
        // What the next ensure of this attach will see.
        links.set(plan.name, { name: plan.name, addrs: [plan.gatewayCidr, plan.aliasCidr], up: true });
      } catch (err) {
        await this.removeNet();
        throw err;
      }
      return net;
    });
  }

  private bridgePlan(net: MachineNetRecord) {
    return { name: net.bridge, mac: machineBridgeMac(this.names), gatewayCidr: `${net.gateway}/${parseCidr(net.subnet).prefix}`, aliasCidr: `${net.hostAlias}/32` };
  }

  private async removeNet(): Promise<void> {
    this.listeners.stop();
    const had = this.state.machineNet;
    await deleteLink(this.names.machineBridge);
    if (had) {
      this.state.setMachineNet(undefined);
      await this.networks.syncFirewall();
    }
  }

  /** Lowest free address, skipping the gateway and the host alias. */
  private allocateIp(net: MachineNetRecord): string {
    const cidr = parseCidr(net.subnet);
    const used = new Set([net.gateway, net.hostAlias, ...[...this.state.machines.values()].map((m) => m.ip)]);
    for (let a = cidr.base + 1; a < cidrLast(cidr); a++) {
      const ip = formatIp(a);
      if (!used.has(ip)) return ip;
    }
    throw new NetworkError("unavailable", `no free address left for machines on ${net.subnet}`);
  }

  /** The name-derived TAP name, unless another machine's hash collides with it. */
  private freeTapName(machine: string): string {
    const taken = new Set([...this.state.machines.values()].map((m) => m.tap));
    for (let salt = 0; ; salt++) {
      const name = tapName(this.names, machine, salt);
      if (!taken.has(name)) return name;
    }
  }
}

function validateName(machine: string): void {
  if (!MACHINE_NAME.test(machine)) {
    throw new NetworkError("invalid_argument", `invalid machine name ${JSON.stringify(machine)}: 1-63 characters from [a-zA-Z0-9_.-], starting with a letter or digit`);
  }
}

/** A forwarded port as asked for (unchecked: protocol may be anything, "" = tcp). */
export type MachinePortRequest = Omit<MachinePortRecord, "protocol"> & { protocol: string };

function validatePort(p: MachinePortRequest): MachinePortRecord {
  const protocol = p.protocol || "tcp";
  if (protocol !== "tcp" && protocol !== "udp") throw new NetworkError("invalid_argument", `invalid protocol ${JSON.stringify(p.protocol)}: tcp or udp`);
  if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new NetworkError("invalid_argument", `invalid machine port ${p.port}`);
  const hostPort = p.hostPort || p.port;
  if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65535) throw new NetworkError("invalid_argument", `invalid host port ${p.hostPort}`);
  // The address ends up in an iptables rule: a literal IPv4 address only, re-formatted.
  const ip = p.hostIp ? parseIp(p.hostIp) : 0;
  if (ip === undefined) throw new NetworkError("invalid_argument", `invalid host IP ${JSON.stringify(p.hostIp)}: only IPv4 addresses are supported`);
  return { protocol, port: p.port, hostPort, hostIp: ip === 0 ? "" : formatIp(ip) };
}
