/**
 * Embedded DNS for user-defined networks. One UDP and one TCP listener per network,
 * on its gateway address port 53 (containers reach it as 127.0.0.11 through a DNAT in
 * their namespace). Names of containers sharing a network with the asker (name,
 * aliases, short ID) are answered here; everything else goes to the host's resolvers.
 */
import type { Logger } from "../../../lib/log.ts";
import { buildAnswer, buildError, buildPtrAnswer, parseQuery, RCODE_NXDOMAIN, RCODE_SERVFAIL, reverseName, TYPE_A, TYPE_AAAA, TYPE_PTR, type DnsQuestion } from "./dns-wire.ts";

/** Resolves a name for the container at `askerIp`; undefined = not ours, forward it. */
export type NameLookup = (askerIp: string, name: string) => string[] | undefined;
/** Name of the container owning `ip` as seen from the asker; undefined = not ours. */
export type AddressLookup = (askerIp: string, ip: string) => string | undefined;

interface Listener {
  udp: Bun.udp.Socket<"uint8array">;
  tcp: Bun.TCPSocketListener<{ buf: Uint8Array }>;
}

const FORWARD_TIMEOUT_MS = 2000;

export class EmbeddedDns {
  private listeners = new Map<string, Listener>();

  constructor(
    private readonly lookup: NameLookup,
    /** Resolvers to forward to for the container at askerIp. */
    private readonly upstreams: (askerIp: string) => string[],
    private readonly log: Logger,
    private readonly reverse: AddressLookup = () => undefined,
  ) {}

  /** Starts serving on `ip` (a gateway address); idempotent. */
  async listen(ip: string): Promise<void> {
    if (this.listeners.has(ip)) return;
    const udp = await Bun.udpSocket({
      hostname: ip,
      port: 53,
      binaryType: "uint8array",
      socket: {
        data: (sock, buf, port, addr) => {
          void this.answer(buf, addr).then((reply) => reply && sock.send(reply, port, addr));
        },
        // ICMP errors from a client that went away must not take the listener down.
        error: () => undefined,
      },
    });
    const tcp = Bun.listen<{ buf: Uint8Array }>({
      hostname: ip,
      port: 53,
      socket: {
        open: (s) => {
          s.data = { buf: new Uint8Array(0) };
        },
        data: (s, chunk) => {
          const buf = new Uint8Array(s.data.buf.length + chunk.length);
          buf.set(s.data.buf);
          buf.set(chunk, s.data.buf.length);
          s.data.buf = buf;
          if (buf.length < 2) return;
          const len = (buf[0] << 8) | buf[1];
          if (buf.length < 2 + len) return;
          void this.answer(buf.subarray(2, 2 + len), s.remoteAddress).then((reply) => {
            if (!reply) return void s.end();
            const framed = new Uint8Array(2 + reply.length);
            framed[0] = reply.length >> 8;
            framed[1] = reply.length & 255;
            framed.set(reply, 2);
            s.end(framed);
          });
        },
      },
    });
    this.listeners.set(ip, { udp, tcp });
  }

  close(ip: string): void {
    const l = this.listeners.get(ip);
    if (!l) return;
    l.udp.close();
    l.tcp.stop(true);
    this.listeners.delete(ip);
  }

  closeAll(): void {
    for (const ip of [...this.listeners.keys()]) this.close(ip);
  }

  addresses(): string[] {
    return [...this.listeners.keys()];
  }

  private async answer(msg: Uint8Array, asker: string): Promise<Uint8Array | undefined> {
    const q = parseQuery(msg);
    if (!q) return undefined;
    if (q.type === TYPE_PTR) {
      const ip = reverseName(q.name);
      const target = ip ? this.reverse(asker, ip) : undefined;
      if (target) return buildPtrAnswer(msg, q, target);
    }
    const local = this.lookup(asker, stripSearchDomain(q.name));
    if (local !== undefined) {
      // Known name: A or AAAA records, an empty NOERROR answer for other types.
      const wanted = q.type === TYPE_A ? local.filter((ip) => !ip.includes(":")) : q.type === TYPE_AAAA ? local.filter((ip) => ip.includes(":")) : [];
      return buildAnswer(msg, q, wanted);
    }
    return this.forward(msg, q, asker);
  }

  /** Forwards to the first host resolver that answers in time; SERVFAIL otherwise. */
  private async forward(msg: Uint8Array, q: DnsQuestion, asker: string): Promise<Uint8Array> {
    const upstreams = this.upstreams(asker);
    if (upstreams.length === 0) return buildError(msg, q, q.name.includes(".") ? RCODE_SERVFAIL : RCODE_NXDOMAIN);
    for (const server of upstreams) {
      const reply = await queryUpstream(server, msg).catch((err) => {
        this.log.debug("dns forward failed", { server, err: String(err) });
        return undefined;
      });
      if (reply) return reply;
    }
    return buildError(msg, q, RCODE_SERVFAIL);
  }
}

function stripSearchDomain(name: string): string {
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

async function queryUpstream(server: string, msg: Uint8Array): Promise<Uint8Array | undefined> {
  const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
  const sock = await Bun.udpSocket({
    hostname: "0.0.0.0",
    binaryType: "uint8array",
    socket: { data: (_s, buf) => resolve(buf), error: () => resolve(undefined) },
  });
  const timer = setTimeout(() => resolve(undefined), FORWARD_TIMEOUT_MS);
  try {
    sock.send(msg, 53, server);
    return await promise;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}
