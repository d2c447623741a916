/**
 * Holds published host ports open with real sockets, like Docker's port reservation:
 * a taken port fails fast with Docker's "address already in use" error, and nobody
 * else can grab it while it is published. Traffic itself never reaches these sockets:
 * iptables DNAT sends it to the container first.
 */
import { NetworkError } from "../core/network-error.ts";

type Held = { close(): void };

export interface PortRequest {
  protocol: "tcp" | "udp";
  hostIp: string;
  /** 0 = any free port. */
  hostPort: number;
  /** Inclusive upper bound of a range (0 = single port). */
  hostPortEnd: number;
}

export class PortReservations {
  private held = new Map<string, Held>();

  private static key(protocol: string, hostIp: string, port: number): string {
    return `${protocol}/${hostIp || "0.0.0.0"}/${port}`;
  }

  /** Binds the port (or one of the range); returns the port actually held. */
  async reserve(req: PortRequest, owner: string): Promise<number> {
    const hostIp = req.hostIp || "0.0.0.0";
    const candidates = req.hostPort === 0 ? [0] : range(req.hostPort, req.hostPortEnd || req.hostPort);
    let lastErr: unknown;
    for (const port of candidates) {
      try {
        const { sock, bound } = await bind(req.protocol, hostIp, port);
        this.held.set(PortReservations.key(req.protocol, hostIp, bound), sock);
        return bound;
      } catch (err) {
        lastErr = err;
      }
    }
    const shown = req.hostPortEnd ? `${req.hostPort}-${req.hostPortEnd}` : String(req.hostPort);
    const e = lastErr as { code?: string; message?: string };
    // Bun reports a taken port as "Failed to listen at ..." (EADDRINUSE for UDP).
    const inUse = e?.code === "EADDRINUSE" || /in use|failed to listen|bind/i.test(String(e?.message ?? e));
    const reason = inUse ? "address already in use" : String(e?.message ?? e);
    throw new NetworkError("internal", `driver failed programming external connectivity on endpoint ${owner}: failed to bind host port for ${hostIp}:${shown}:${req.protocol}: ${reason}`);
  }

  release(protocol: string, hostIp: string, port: number): void {
    const k = PortReservations.key(protocol, hostIp, port);
    this.held.get(k)?.close();
    this.held.delete(k);
  }

  releaseAll(): void {
    for (const h of this.held.values()) h.close();
    this.held.clear();
  }
}

function range(a: number, b: number): number[] {
  const out: number[] = [];
  for (let p = a; p <= b; p++) out.push(p);
  return out;
}

async function bind(protocol: "tcp" | "udp", hostname: string, port: number): Promise<{ sock: Held; bound: number }> {
  if (protocol === "udp") {
    const s = await Bun.udpSocket({ hostname, port, socket: { data() {}, error() {} } });
    return { sock: { close: () => s.close() }, bound: s.port };
  }
  const l = Bun.listen({ hostname, port, exclusive: true, socket: { open: (s) => void s.end(), data() {} } });
  return { sock: { close: () => l.stop(true) }, bound: l.port };
}
