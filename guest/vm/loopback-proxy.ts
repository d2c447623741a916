/**
 * Makes ports that listen only on the machine's loopback reachable from the host, as
 * OrbStack does: the agent listens on the machine's own address at the same port and
 * relays each connection to the loopback listener (node:net pipes, with backpressure).
 * The service sees connections from 127.0.0.1. While a proxy holds <machine ip>:P, a
 * bind of that exact address and port fails (a wildcard bind already fails because of
 * the loopback listener itself).
 */
import { createServer, connect, type Server } from "node:net";
import type { Logger } from "../../lib/log.ts";
import type { ListenPort } from "./listen-table.ts";

interface Proxy {
  server: Server;
  bind: string;
  target: string;
  listening: boolean;
}

export class LoopbackProxy {
  private readonly proxies = new Map<number, Proxy>();

  constructor(private readonly log: Logger) {}

  /** Whether `address:port` is one of the proxies' own listeners. */
  owns(address: string, port: number): boolean {
    const p = this.proxies.get(port);
    return !!p && (p.bind === address || `::ffff:${p.bind}` === address);
  }

  /** Whether the host can reach loopback-only `port` through a proxy. */
  serves(port: number): boolean {
    return !!this.proxies.get(port)?.listening;
  }

  /** One proxy per loopback-only port, bound to `bind` (none without an address). */
  async sync(ports: ListenPort[], bind: string | undefined): Promise<void> {
    const wanted = new Map(ports.filter((p) => p.loopbackOnly && bind).map((p) => [p.port, p.loopbackTarget ?? "127.0.0.1"]));
    for (const [port, p] of this.proxies) {
      if (wanted.get(port) === p.target && p.bind === bind) continue;
      this.proxies.delete(port);
      p.server.close();
    }
    const opening: Promise<void>[] = [];
    for (const [port, target] of wanted) {
      if (this.proxies.has(port) || !bind) continue;
      opening.push(this.open(port, bind, target));
    }
    await Promise.all(opening);
  }

  close(): void {
    for (const p of this.proxies.values()) p.server.close();
    this.proxies.clear();
  }

  private open(port: number, bind: string, target: string): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect({ host: target, port });
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
    });
    const proxy: Proxy = { server, bind, target, listening: false };
    this.proxies.set(port, proxy);
    return new Promise((resolve) => {
      server.once("error", (err) => {
        this.log.warn("loopback port proxy cannot listen", { port, bind, error: err.message });
        if (this.proxies.get(port) === proxy) this.proxies.delete(port);
        resolve();
      });
      server.listen({ host: bind, port, exclusive: true }, () => {
        proxy.listening = true;
        resolve();
      });
    });
  }
}
