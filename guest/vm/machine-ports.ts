/**
 * The machine's ports for the host (ListeningPorts): what the port watcher sees, minus
 * the agent's own proxies, with loopback-only ports reported once their proxy listens.
 * Started by the first ListeningPorts call (vmm makes it once the agent answers), so it
 * costs the boot nothing; after that a "machine_ports" event tells vmm of each change.
 */
import { networkInterfaces } from "node:os";
import type { Logger } from "../../lib/log.ts";
import type { ListenPort } from "./listen-table.ts";
import { LoopbackProxy } from "./loopback-proxy.ts";
import { PortWatch } from "./port-watch.ts";

/** The machine's own IPv4 address (eth0's, from netd's DHCP), if it has one yet. */
function machineAddress(): string | undefined {
  for (const a of networkInterfaces().eth0 ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  return undefined;
}

export class MachinePorts {
  private readonly proxy: LoopbackProxy;
  private readonly watch: PortWatch;
  private reported: ListenPort[] = [];
  private started: Promise<void> | undefined;
  /** Scans are applied one after another (proxies open asynchronously). */
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly log: Logger,
    /** The reported set changed. */
    private readonly onChange: () => void,
  ) {
    this.proxy = new LoopbackProxy(log);
    this.watch = new PortWatch(
      log,
      (ports) => this.apply(ports, true),
      (l) => l.protocol === "tcp" && this.proxy.owns(l.address, l.port),
    );
  }

  async list(): Promise<ListenPort[]> {
    this.started ??= this.watch.start().then((ok) => (ok ? this.apply(this.watch.ports, false) : undefined));
    await this.started;
    await this.chain;
    return this.reported;
  }

  stop(): void {
    this.watch.stop();
    this.proxy.close();
  }

  private apply(ports: ListenPort[], notify: boolean): Promise<void> {
    this.chain = this.chain
      .then(async () => {
        await this.proxy.sync(
          ports.filter((p) => p.protocol === "tcp"),
          machineAddress(),
        );
        // Loopback-only UDP is not proxied: it stays the machine's.
        const next = ports.filter((p) => !p.loopbackOnly || (p.protocol === "tcp" && this.proxy.serves(p.port)));
        if (JSON.stringify(next) === JSON.stringify(this.reported)) return;
        this.reported = next;
        this.log.info("listening ports changed", { ports: next.map((p) => `${p.port}/${p.protocol}${p.loopbackOnly ? " (loopback, proxied)" : ""}`) });
        if (notify) this.onChange();
      })
      .catch((err) => this.log.error("applying listening ports failed", { error: err }));
    return this.chain;
  }
}
