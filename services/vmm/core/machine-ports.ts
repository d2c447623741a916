/**
 * Automatic port forwarding for VM machines, as OrbStack and WSL2 do: a TCP port a
 * machine listens on is reachable at the host's 127.0.0.1 on the same port. The agent
 * watches its listeners (guest/vm/port-watch.ts) and says when they change (a
 * "machine_ports" event); vmm then asks for the set (ListeningPorts) and hands it to
 * netd (SetMachinePorts). Nothing polls: a sync runs when the agent link comes up
 * (start, adoption, reconnect) and on each event. A host port already taken is logged
 * and shown in inspect, never fatal.
 */
import type { Logger } from "../../../lib/log.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { AgentClient } from "./agent-client.ts";
import type { MachineNetwork } from "./machine-network.ts";

export interface PortForwarding {
  /** "8080/tcp", sorted by port. */
  ports: string[];
  /** netd's message per port that could not be forwarded. */
  errors: string[];
}

const LOOPBACK = "127.0.0.1";

interface MachineSync {
  running: boolean;
  again: boolean;
  task?: Promise<void>;
  state: PortForwarding;
}

export class MachinePortSync {
  private readonly machines = new Map<string, MachineSync>();

  constructor(
    private readonly network: MachineNetwork,
    /** The machine's connected agent, if any. */
    private readonly agent: (machine: string) => AgentClient | undefined,
    private readonly log: Logger,
  ) {}

  /** What is forwarded now (for inspect). */
  forwarding(machine: string): PortForwarding {
    return this.machines.get(machine)?.state ?? { ports: [], errors: [] };
  }

  onEvent(machine: string, e: RuntimeEvent): void {
    if (e.type === "machine_ports") this.sync(machine);
  }

  /** Brings netd's forwarding in line with the agent's listeners (coalesced per machine). */
  sync(machine: string): void {
    let s = this.machines.get(machine);
    if (!s) this.machines.set(machine, (s = { running: false, again: false, state: { ports: [], errors: [] } }));
    if (s.running) {
      s.again = true;
      return;
    }
    s.running = true;
    s.task = this.run(machine, s);
  }

  /** The machine's VM is gone: nothing listens any more. */
  async clear(machine: string): Promise<void> {
    const had = this.machines.get(machine);
    this.machines.delete(machine);
    await had?.task;
    await this.network.setPorts(machine, []).catch((err) => this.log.warn("clearing forwarded ports failed", { machine, error: err }));
    // Host ports it held may be what other machines could not get: they try again.
    for (const [other, o] of this.machines) if (o.state.errors.length) this.sync(other);
  }

  private async run(machine: string, s: MachineSync): Promise<void> {
    try {
      do {
        s.again = false;
        const agent = this.agent(machine);
        if (!agent?.isOpen) return;
        const { ports } = await agent.call("listeningPorts", { machine });
        if (this.machines.get(machine) !== s) return;
        // Host loopback only, as OrbStack does: a machine's services are the user's, not the LAN's.
        const r = await this.network.setPorts(
          machine,
          ports.map((p) => ({ protocol: p.protocol, port: p.port, hostIp: LOOPBACK })),
        );
        if (this.machines.get(machine) !== s) return;
        s.state = { ports: r.ports.map((p) => `${p.port}/${p.protocol}`), errors: r.failed };
        this.log.info("forwarded machine ports", { machine, ports: s.state.ports, failed: r.failed.length ? r.failed : undefined });
        for (const f of r.failed) this.log.warn("machine port not forwarded", { machine, reason: f });
      } while (s.again);
    } catch (err) {
      this.log.warn("machine port sync failed", { machine, error: err });
    } finally {
      s.running = false;
    }
  }
}
