/**
 * Network lifecycle: the predefined networks (bridge, host, none), user-defined
 * bridge networks (create, remove, prune) and their kernel side (bridge, DNS
 * listener, firewall chains), rebuilt from records on start.
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../../../lib/log.ts";
import { hostRoutes, listHostLinks, writeSysctl, type HostLink } from "../platform/links.ts";
import { applyChains, applyOwnTables } from "../platform/iptables.ts";
import type { BridgePlan, Datapath } from "../platform/datapath.ts";
import { exec } from "../platform/exec.ts";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import { withHostLock } from "../platform/host-lock.ts";
import { BRIDGE_NAME_OPT, MTU_OPT, validateBridgeOptions } from "./bridge-options.ts";
import type { EmbeddedDns } from "./dns-server.ts";
import { EngineApplied } from "./engine-applied.ts";
import { engineFirewallRules, firewallRules, type FirewallState } from "./firewall-rules.ts";
import { macForIp, networkCidrs, pickSubnet, pickSubnet6, splitPools, validatePools, validatePools6 } from "./ipam.ts";
import { parseCidr6 } from "./ipv6.ts";
import { parseCidr } from "./ipv4.ts";
import type { IpamPool, NetworkRecord } from "./model.ts";
import { isMachineLink, userBridgeName, type NetNames } from "./names.ts";
import { NetworkError } from "./network-error.ts";
import type { NetState } from "./state.ts";

export const newId = () => randomBytes(32).toString("hex");

export interface CreateNetwork {
  name: string;
  driver: string;
  internal: boolean;
  attachable: boolean;
  enableIpv6: boolean;
  ipamDriver: string;
  pools: IpamPool[];
  options: Record<string, string>;
  labels: Record<string, string>;
  ipamOptions: Record<string, string>;
}

const PREDEFINED = new Set(["bridge", "host", "none"]);

export class Networks {
  /** VM mode: the bridges and firewall already made in the engine machine since its boot. */
  readonly engineApplied = new EngineApplied();

  constructor(
    private readonly state: NetState,
    private readonly names: NetNames,
    private readonly dns: EmbeddedDns,
    /** Where container bridges and namespaces live: this host, or the engine machine (VM mode). */
    readonly datapath: Datapath,
    private readonly log: Logger,
  ) {}

  /** VM mode: container networks live in the engine machine (netd keeps IPAM, names and rules). */
  get inEngine(): boolean {
    return this.datapath.where === "engine";
  }

  /** Makes kernel objects match the records: bridges, DNS listeners, firewall; removes our leftovers. */
  async reconcile(): Promise<void> {
    writeSysctl("net/ipv4/ip_forward", "1");
    const links = await listHostLinks();
    const byName = new Map(links.map((l) => [l.name, l]));
    const wanted = new Set<string>();
    await withHostLock(async () => {
      await this.ensurePredefined();
      // VM mode: routed to the engine machine while the lock is held (see syncEngineRoutes).
      if (this.inEngine) await this.syncEngineRoutes();
      // Guards first: a bridge (route_localnet=1, DNS on its gateway) never runs unguarded.
      await this.syncFirewall();
      // VM mode: the bridges are the engine machine's, made as containers attach.
      for (const net of this.state.networks.values()) {
        if (net.driver !== "bridge" || this.inEngine) continue;
        wanted.add(net.bridge);
        await this.bringUp(net, byName.get(net.bridge));
      }
    });
    for (const l of links) {
      if (l.name.startsWith(this.names.ifPrefix) && !wanted.has(l.name) && !isVeth(l.name, this.names) && !isMachineLink(this.names, l.name)) {
        this.log.info("removing leftover bridge", { name: l.name });
        await exec(["ip", "link", "del", l.name]);
      }
    }
  }

  private firewallState(): FirewallState {
    return {
      networks: [...this.state.networks.values()],
      endpoints: [...this.state.endpoints.values()],
      attachments: [...this.state.attachments.values()],
      machineNet: this.state.machineNet,
      machines: [...this.state.machines.values()],
      containersInEngine: this.inEngine,
    };
  }

  /** The host's rules (and in VM mode, best effort, the engine machine's). */
  async syncFirewall(): Promise<void> {
    await applyChains(this.names, firewallRules(this.names, this.firewallState()));
    if (this.inEngine) await this.syncEngineFirewall().catch((err) => this.log.debug("engine machine's firewall not updated", { err: String(err) }));
  }

  /** VM mode: the engine machine's own tables (rewritten whole: they are ArcBox's alone). */
  async syncEngineFirewall(): Promise<void> {
    const rules = engineFirewallRules(this.names, this.firewallState());
    await this.engineApplied.once("firewall", JSON.stringify(rules), () => applyOwnTables(this.datapath.runner, this.names, rules));
  }

  /** The engine machine's address on the machine bridge (VM mode), once it has a lease. */
  engineAddress(): string | undefined {
    return this.state.machines.get(ENGINE_MACHINE)?.ip;
  }

  /**
   * VM mode: each container network's subnet is routed to the engine machine, so the
   * host reaches containers by address (published ports are DNATed straight to them,
   * as in host mode) and the machine routes them to its bridges. The route is also what
   * holds the subnet on the host (other daemons skip routed subnets): it is added under
   * the host-wide lock the subnet was picked under (reconcile, create).
   */
  async syncEngineRoutes(): Promise<void> {
    const via = this.engineAddress();
    const bridge = this.state.machineNet?.bridge;
    if (!via || !bridge) return;
    // `add`, never `replace`: a route someone else has for the subnet is never taken over
    // ("File exists" for our own, added before, is fine).
    const lines = [...this.state.networks.values()].filter((n) => n.driver === "bridge").flatMap((n) => n.pools.map((p) => `route add ${p.subnet} via ${via} dev ${bridge}`));
    if (lines.length) await exec(["ip", "-force", "-batch", "-"], `${lines.join("\n")}\n`);
  }

  /** VM mode: the network's bridge in the engine machine and its subnet's route (at each attach: the machine may have rebooted). */
  async ensureInEngine(net: NetworkRecord): Promise<void> {
    const plan = { ...bridgeOf(net), routeLocalnet: false };
    await this.engineApplied.once(`bridge:${net.bridge}`, JSON.stringify(plan), () => this.datapath.ensureBridge(plan));
  }

  /** Subnets of our networks and of the machine bridge: never picked again. */
  takenCidrs(nets: NetworkRecord[] = [...this.state.networks.values()]) {
    const m = this.state.machineNet;
    return [...networkCidrs(nets), ...(m ? [parseCidr(m.subnet)] : [])];
  }

  private async bringUp(net: NetworkRecord, existing?: HostLink): Promise<void> {
    await this.datapath.ensureBridge({ ...bridgeOf(net), existing, routeLocalnet: true });
    if (!net.isDefault) await this.dns.listen(net.pools[0].gateway);
  }

  private async ensurePredefined(): Promise<void> {
    const now = new Date();
    const base = {
      created: now.toISOString(),
      createdUnix: Math.floor(now.getTime() / 1000),
      internal: false,
      attachable: false,
      enableIpv6: false,
      ipamDriver: "default",
      ipamOptions: {},
      labels: {},
      builtin: true,
    };
    if (!this.state.findNetwork("bridge")) {
      const taken = [...this.takenCidrs([...this.state.networks.values()]), ...(await hostRoutes()).map((r) => parseCidr(r))];
      const pool = pickSubnet(taken);
      this.state.putNetwork({
        ...base,
        id: newId(),
        name: "bridge",
        driver: "bridge",
        pools: [pool],
        bridge: this.names.defaultBridge,
        isDefault: true,
        options: {
          "com.docker.network.bridge.default_bridge": "true",
          "com.docker.network.bridge.enable_icc": "true",
          "com.docker.network.bridge.enable_ip_masquerade": "true",
          "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
          [BRIDGE_NAME_OPT]: this.names.defaultBridge,
          [MTU_OPT]: "1500",
        },
      });
    }
    if (!this.state.findNetwork("host")) this.state.putNetwork({ ...base, id: newId(), name: "host", driver: "host", pools: [], options: {}, bridge: "", isDefault: false });
    if (!this.state.findNetwork("none")) this.state.putNetwork({ ...base, id: newId(), name: "none", driver: "null", pools: [], options: {}, bridge: "", isDefault: false });
  }

  async create(req: CreateNetwork): Promise<{ id: string; warning: string }> {
    // Any non-empty name, as dockerd takes it ("test 01", "a/b"): it is only a key here.
    if (!req.name) throw new NetworkError("invalid_argument", "network name is required");
    if (PREDEFINED.has(req.name)) throw new NetworkError("permission_denied", `${req.name} is a pre-defined network and cannot be created`);
    const driver = req.driver || "bridge";
    if (driver === "host" || driver === "null") throw new NetworkError("permission_denied", `only one instance of "${driver}" network is allowed`);
    if (driver !== "bridge") throw new NetworkError("not_found", `plugin "${driver}" not found`);
    if (req.ipamDriver && req.ipamDriver !== "default") throw new NetworkError("not_found", `plugin "${req.ipamDriver}" not found`);
    for (const n of this.state.networks.values()) {
      if (n.name === req.name) throw new NetworkError("already_exists", `network with name ${req.name} already exists`);
    }
    validateBridgeOptions(req.options);
    const existing = [...this.state.networks.values()];
    const split = splitPools(req.pools);
    const given = validatePools(split.v4, existing);
    // A v6 pool is kept even without EnableIPv6 (as dockerd does); addresses need both.
    const given6 = validatePools6(split.v6, existing);
    const pools6 = given6.length ? given6 : req.enableIpv6 ? [pickSubnet6(existing)] : [];
    return given.length
      ? this.createWith(req, driver, given, pools6)
      : withHostLock(async () => {
          const taken = [...this.takenCidrs(existing), ...(await hostRoutes()).map((r) => parseCidr(r))];
          return this.createWith(req, driver, [pickSubnet(taken)], pools6);
        });
  }

  private async createWith(req: CreateNetwork, driver: string, pools: IpamPool[], pools6: IpamPool[]): Promise<{ id: string; warning: string }> {
    const id = newId();
    const bridge = req.options[BRIDGE_NAME_OPT] || userBridgeName(this.names, id);
    // The name ends up in `ip` and iptables command lines: a plain interface name only.
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw new NetworkError("invalid_argument", `invalid bridge name ${JSON.stringify(bridge)}: 1-15 characters from [a-zA-Z0-9_.-]`);
    const sameBridge = [...this.state.networks.values()].find((n) => n.bridge === bridge);
    if (sameBridge) {
      throw new NetworkError("permission_denied", `cannot create network ${id} (${bridge}): conflicts with network ${sameBridge.id} (${bridge}): networks have same bridge name`);
    }
    if ((await listHostLinks()).some((l) => l.name === bridge)) {
      // Never adopt an interface someone else owns (docker0, another daemon's bridge).
      throw new NetworkError("conflict", `bridge name ${bridge} is already in use`);
    }
    const now = new Date();
    const net: NetworkRecord = {
      id,
      name: req.name,
      driver,
      created: now.toISOString(),
      createdUnix: Math.floor(now.getTime() / 1000),
      internal: req.internal,
      attachable: req.attachable,
      enableIpv6: req.enableIpv6,
      ipamDriver: "default",
      ipamOptions: req.ipamOptions,
      pools,
      pools6,
      options: req.options,
      labels: req.labels,
      bridge,
      builtin: false,
      isDefault: false,
    };
    try {
      // Firewall (with the bridge's guards) before the bridge and its DNS listener exist.
      this.state.putNetwork(net);
      await this.syncFirewall();
      // VM mode: the bridge is made in the engine machine when a container attaches.
      if (this.inEngine) await this.syncEngineRoutes();
      else await this.bringUp(net);
    } catch (err) {
      // Nothing half-built: drop the record, the listener and the bridge again.
      if (this.state.networks.has(id)) this.state.deleteNetwork(id);
      this.dns.close(pools[0].gateway);
      await this.datapath.deleteLink(bridge);
      await this.syncFirewall().catch(() => undefined);
      throw err;
    }
    return { id, warning: "" };
  }

  async remove(ref: string): Promise<void> {
    const net = this.state.getNetwork(ref);
    if (net.builtin) throw new NetworkError("permission_denied", `${net.name} is a pre-defined network and cannot be removed`);
    const eps = this.state.endpointsIn(net.id);
    if (eps.length > 0) {
      const who = eps.map((e) => this.state.attachments.get(e.containerId)?.containerName ?? e.containerId.slice(0, 12)).join(", ");
      throw new NetworkError("permission_denied", `error while removing network: network ${net.name} id ${net.id} has active endpoints (${who})`);
    }
    this.state.deleteNetwork(net.id);
    for (const p of net.pools) this.dns.close(p.gateway);
    this.engineApplied.forget(`bridge:${net.bridge}`);
    await this.datapath.deleteLink(net.bridge);
    if (this.inEngine) for (const p of net.pools) await exec(["ip", "route", "del", p.subnet, "via", this.engineAddress() ?? "0.0.0.0"]);
    await this.syncFirewall();
  }

  async prune(labels: string[], notLabels: string[], untilUnix: number): Promise<string[]> {
    const deleted: string[] = [];
    for (const net of [...this.state.networks.values()]) {
      if (net.builtin || this.state.endpointsIn(net.id).length > 0) continue;
      if (untilUnix > 0 && net.createdUnix >= untilUnix) continue;
      if (!labels.every((l) => labelMatches(net.labels, l))) continue;
      if (notLabels.some((l) => labelMatches(net.labels, l))) continue;
      await this.remove(net.id);
      deleted.push(net.name);
    }
    return deleted;
  }

  /** Removes every kernel object of this daemon (bridges, DNS listeners); records stay. */
  async teardownKernel(): Promise<void> {
    this.dns.closeAll();
    this.engineApplied.reset();
    for (const net of this.state.networks.values()) if (net.bridge) await this.datapath.deleteLink(net.bridge);
  }
}

export function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

function isVeth(name: string, n: NetNames): boolean {
  return name.startsWith(`${n.ifPrefix}v`);
}

/** A network's bridge as the datapath makes it, on the host or in the engine machine. */
function bridgeOf(net: NetworkRecord): Pick<BridgePlan, "name" | "mac" | "gatewayCidr" | "gateway6Cidr"> {
  const pool = net.pools[0];
  const v6 = net.enableIpv6 ? net.pools6?.[0] : undefined;
  return {
    name: net.bridge,
    mac: macForIp(pool.gateway),
    gatewayCidr: `${pool.gateway}/${parseCidr(pool.subnet).prefix}`,
    gateway6Cidr: v6 ? `${v6.gateway}/${parseCidr6(v6.subnet).prefix}` : undefined,
  };
}
