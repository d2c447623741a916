/**
 * netd's facade: composes records, networks, attachments, ports and DNS, runs every
 * change under one lock, reconciles the kernel with the records on start, and
 * leaves nothing behind on stop when no container is attached.
 */
import type { Logger } from "../../../lib/log.ts";
import { removeChains } from "../platform/iptables.ts";
import { hostResolvConf } from "../platform/host-files.ts";
import { PortReservations } from "../platform/port-reservations.ts";
import type { NetStore } from "../storage/net-store.ts";
import { Attacher, type AttachInput } from "./attacher.ts";
import { EmbeddedDns } from "./dns-server.ts";
import { parseResolvConf } from "./etc-files.ts";
import type { AttachmentRecord, EndpointRecord, NetworkRecord, PendingEndpoint } from "./model.ts";
import type { NetNames } from "./names.ts";
import { DhcpServer } from "./dhcp-server.ts";
import { MACHINE_DOMAIN, MachineNetworks, type MachineAttachment, type MachinePortRequest } from "./machines.ts";
import { Networks, type CreateNetwork } from "./networks.ts";
import { NameResolution } from "./name-resolution.ts";
import { NetState } from "./state.ts";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import { Datapath } from "../platform/datapath.ts";
import { hostRunner, type ToolRunner } from "../platform/tool-runner.ts";

export class NetDaemon {
  readonly state: NetState;
  private readonly dns: EmbeddedDns;
  private readonly networks: Networks;
  private readonly attacher: Attacher;
  readonly machines: MachineNetworks;
  private readonly dhcp: DhcpServer;
  private readonly ports = new PortReservations();

  constructor(
    store: NetStore,
    readonly names: NetNames,
    dataDir: string,
    private readonly log: Logger,
    /** Where the container datapath runs: this host, or the engine machine (VM mode). */
    runner: ToolRunner = hostRunner,
  ) {
    this.state = new NetState(store);
    const resolution = new NameResolution(this.state);
    // One resolver serves every bridge; the asker's address says whether it is a machine
    // (machine names, the host alias) or a container (its networks' names).
    const isMachine = (ip: string) => this.machines.isMachineAddress(ip);
    this.dns = new EmbeddedDns(
      (ip, name) => (isMachine(ip) ? this.machines.lookup(name) : resolution.lookup(ip, name)),
      (ip) => (isMachine(ip) ? undefined : resolution.dnsServersOf(ip)) ?? upstreamResolvers(),
      log,
      (asker, ip) => (isMachine(asker) ? this.machines.reverseLookup(ip) : resolution.reverseLookup(asker, ip)),
    );
    this.networks = new Networks(this.state, names, this.dns, new Datapath(runner), log);
    this.attacher = new Attacher(this.state, names, this.networks, this.ports, dataDir, log);
    this.dhcp = new DhcpServer({ byMac: (mac) => this.machines.byMac(mac), noteLease: (m, h, e) => this.machines.noteLease(m, h, e) }, MACHINE_DOMAIN, log);
    this.machines = new MachineNetworks(
      this.state,
      names,
      this.networks,
      this.ports,
      {
        start: async (net) => {
          await this.dns.listen(net.gateway);
          // Without DHCP a machine still boots (it goes on without network): say why, do not fail.
          await this.dhcp.start(net).catch((err) => log.error("cannot serve DHCP for machines", { err: String(err) }));
        },
        stop: () => {
          this.dhcp.stop();
          if (this.state.machineNet) this.dns.close(this.state.machineNet.gateway);
        },
      },
      log,
    );
  }

  start(): Promise<void> {
    return this.state.exclusive(async () => {
      if (this.networks.inEngine) {
        // VM mode: container subnets are routed to the engine machine, and that route is
        // what holds a subnet on the host (no bridge here): the engine's lease comes
        // first, so a subnet is routed the moment it is picked, under the host-wide lock.
        await this.machines.reconcile();
        if (!this.state.machines.has(ENGINE_MACHINE)) await this.machines.attach(ENGINE_MACHINE);
      }
      await this.networks.reconcile();
      await this.attacher.reconcile();
      if (!this.networks.inEngine) await this.machines.reconcile();
    });
  }

  /** No container or machine is attached: nothing (DNS, DHCP, port reservations) needs this process. */
  get idle(): boolean {
    return this.state.attachments.size === 0 && this.state.machines.size === 0;
  }

  /** With containers or machines attached everything stays (they keep running); otherwise all kernel state goes. */
  stop(): Promise<void> {
    return this.state.exclusive(async () => {
      this.ports.releaseAll();
      if (this.state.attachments.size > 0 || this.state.machines.size > 0) {
        this.log.info("stopping with attached containers or machines: keeping their networking");
        return;
      }
      await this.networks.teardownKernel();
      await this.attacher.removeAllNetns();
      await removeChains(this.names);
    });
  }

  listNetworks(): NetworkRecord[] {
    return [...this.state.networks.values()].sort((a, b) => a.createdUnix - b.createdUnix || a.name.localeCompare(b.name));
  }
  createNetwork(req: CreateNetwork) {
    return this.state.exclusive(() => this.networks.create(req));
  }
  removeNetwork(ref: string) {
    return this.state.exclusive(() => this.networks.remove(ref));
  }
  pruneNetworks(labels: string[], notLabels: string[], untilUnix: number) {
    return this.state.exclusive(() => this.networks.prune(labels, notLabels, untilUnix));
  }
  attach(input: AttachInput): Promise<AttachmentRecord> {
    return this.state.exclusive(() => this.attacher.attach(input));
  }
  detach(containerId: string): Promise<void> {
    return this.state.exclusive(() => this.attacher.detach(containerId));
  }
  connect(containerId: string, containerName: string, ep: PendingEndpoint): Promise<EndpointRecord | undefined> {
    return this.state.exclusive(() => this.attacher.connect(this.resolve(containerId), containerName, ep));
  }
  disconnect(containerId: string, network: string, force: boolean): Promise<void> {
    return this.state.exclusive(() => this.attacher.disconnect(this.resolve(containerId), network, force));
  }

  attachMachine(machine: string): Promise<MachineAttachment> {
    return this.state.exclusive(() => this.machines.attach(machine));
  }
  detachMachine(machine: string): Promise<void> {
    return this.state.exclusive(() => this.machines.detach(machine));
  }
  setMachinePorts(machine: string, ports: MachinePortRequest[]) {
    return this.state.exclusive(() => this.machines.setPorts(machine, ports));
  }

  /** An attached container may be named by name or ID prefix too. */
  private resolve(ref: string): string {
    return this.state.findAttachment(ref)?.containerId ?? ref;
  }

  debugState() {
    return {
      networks: this.listNetworks().map((n) => ({ id: n.id.slice(0, 12), name: n.name, bridge: n.bridge, subnet: n.pools[0]?.subnet })),
      attachments: [...this.state.attachments.values()].map((a) => ({ id: a.containerId.slice(0, 12), name: a.containerName, kind: a.kind, ports: a.ports })),
      dns: this.dns.addresses(),
      dhcp: { listening: this.dhcp.listening ?? null, ...this.dhcp.stats },
      machineNet: this.state.machineNet,
      machines: [...this.state.machines.values()].map((m) => ({ machine: m.machine, ip: m.ip, mac: m.mac, tap: m.tap, ports: m.ports })),
    };
  }
}

/**
 * Where the embedded DNS forwards names it does not know: the host's resolvers. netd
 * forwards from the host namespace, so a loopback stub (systemd-resolved) works too.
 */
function upstreamResolvers(): string[] {
  return parseResolvConf(hostResolvConf()).nameservers.filter((ns) => !ns.includes(":"));
}
