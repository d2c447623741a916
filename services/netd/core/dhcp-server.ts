/**
 * netd's DHCP server for the machine bridge: sockets open only while machines are
 * attached; every request is answered from the machines' reserved leases (nothing
 * polls, nothing is kept in memory beyond the records).
 */
import type { Logger } from "../../../lib/log.ts";
import { DhcpSockets } from "../platform/dhcp-socket.ts";
import { parseDhcp } from "./dhcp-wire.ts";
import { respond, type DhcpLease } from "./dhcp-responder.ts";
import type { MachineNetRecord } from "./model.ts";

/** A day: addresses are reserved per machine anyway, renewals need not be frequent. */
export const DHCP_LEASE_SECONDS = 86_400;

export interface DhcpLeases {
  byMac(mac: string): DhcpLease | undefined;
  noteLease(machine: string, clientHostname: string, expiresUnix: number): void;
}

export class DhcpServer {
  private readonly sockets = new DhcpSockets();
  private net: MachineNetRecord | undefined;
  /** Requests answered and not (another daemon's client, malformed): for /state. */
  readonly stats = { answered: 0, ignored: 0 };

  constructor(
    private readonly leases: DhcpLeases,
    private readonly domain: string,
    private readonly log: Logger,
  ) {}

  get listening(): string | undefined {
    return this.sockets.listening;
  }

  async start(net: MachineNetRecord): Promise<void> {
    this.net = net;
    await this.sockets.open(
      net.gateway,
      (msg) => this.onMessage(msg),
      (err) => this.log.warn("dhcp socket error", { err: String(err) }),
    );
  }

  stop(): void {
    this.sockets.close();
    this.net = undefined;
  }

  private onMessage(buf: Uint8Array): void {
    const net = this.net;
    const req = parseDhcp(buf);
    const out =
      net && req
        ? respond(
            req,
            { subnet: net.subnet, gateway: net.gateway, dns: net.gateway, domain: this.domain, leaseSeconds: DHCP_LEASE_SECONDS },
            (mac) => this.leases.byMac(mac),
            Math.floor(Date.now() / 1000),
          )
        : undefined;
    if (!out) {
      this.stats.ignored++;
      return;
    }
    this.stats.answered++;
    if (out.note) this.log.info(out.note);
    if (out.bound) this.leases.noteLease(out.bound.machine, out.bound.clientHostname, out.bound.expiresUnix);
    if (out.reply && out.to) this.sockets.send(out.reply, out.to);
  }
}
