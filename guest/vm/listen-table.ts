/**
 * The listeners of the machine, from /proc/net/{tcp,udp}{,6}: TCP sockets in LISTEN and
 * UDP sockets bound but not connected (servers). Which ports the host should reach, and
 * which of them only listen on the machine's loopback.
 */

export type Protocol = "tcp" | "udp";

export interface Listener {
  protocol: Protocol;
  /** Dotted IPv4 or full-form IPv6 ("::" wildcard, "::1" loopback kept short). */
  address: string;
  port: number;
  loopback: boolean;
}

export interface ListenPort {
  protocol: Protocol;
  port: number;
  /** Every listener of the port is bound to a loopback address. */
  loopbackOnly: boolean;
  /** With loopbackOnly: where to connect to reach it ("127.0.0.1" when any is IPv4, else "::1"). */
  loopbackTarget?: string;
}

const TCP_LISTEN = "0A";
/** TCP_CLOSE: what an unconnected UDP socket shows. */
const UDP_UNCONNECTED = "07";
/** The DHCP client's port: every machine has it, none serves on it. */
const DHCP_CLIENT_PORT = 68;

/** IPv4 in /proc/net/tcp: 8 hex digits of the address in host byte order (little-endian here). */
function ipv4(hex: string): string {
  const n = Number.parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join(".");
}

/** IPv6 in /proc/net/tcp6: four 32-bit words, each in host byte order. */
function ipv6Bytes(hex: string): number[] {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(Number.parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  return bytes;
}

function parseV6(hex: string): { address: string; loopback: boolean } {
  const b = ipv6Bytes(hex);
  const mapped = b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return { address: `::ffff:${b.slice(12).join(".")}`, loopback: b[12] === 127 };
  if (b.every((x) => x === 0)) return { address: "::", loopback: false };
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return { address: "::1", loopback: true };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return { address: groups.join(":"), loopback: false };
}

/**
 * The listening rows of one /proc/net/{tcp,udp}{,6} text: TCP in LISTEN; UDP bound,
 * with no peer. For UDP pass the local port range: an unconnected socket on an
 * ephemeral port is a client's (a DNS lookup), not a service.
 */
export function parseListeners(text: string, v6: boolean, protocol: Protocol = "tcp", ephemeral?: [number, number]): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    if (protocol === "tcp" ? f[3] !== TCP_LISTEN : f[3] !== UDP_UNCONNECTED || !/^0+:0000$/.test(f[2]!)) continue;
    const [addrHex, portHex] = f[1]!.split(":");
    if (!addrHex || !portHex) continue;
    const port = Number.parseInt(portHex, 16);
    if (protocol === "udp" && (port === 0 || port === DHCP_CLIENT_PORT || (ephemeral && port >= ephemeral[0] && port <= ephemeral[1]))) continue;
    if (v6) out.push({ protocol, ...parseV6(addrHex), port });
    else {
      const address = ipv4(addrHex);
      out.push({ protocol, address, port, loopback: address.startsWith("127.") });
    }
  }
  return out;
}

/** /proc/sys/net/ipv4/ip_local_port_range's "low\thigh". */
export function parsePortRange(text: string): [number, number] | undefined {
  const [lo, hi] = text.trim().split(/\s+/).map(Number);
  return lo && hi ? [lo, hi] : undefined;
}

/** One entry per protocol and port, sorted; `ignore` drops listeners (the agent's own proxies). */
export function listenPorts(listeners: Listener[], ignore: (l: Listener) => boolean = () => false): ListenPort[] {
  const byPort = new Map<string, { protocol: Protocol; port: number; loopbackOnly: boolean; v4: boolean }>();
  for (const l of listeners) {
    if (ignore(l)) continue;
    const key = `${l.protocol}/${l.port}`;
    const seen = byPort.get(key) ?? { protocol: l.protocol, port: l.port, loopbackOnly: true, v4: false };
    byPort.set(key, { ...seen, loopbackOnly: seen.loopbackOnly && l.loopback, v4: seen.v4 || !l.address.includes(":") || l.address.startsWith("::ffff:") });
  }
  return [...byPort.values()]
    .sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol))
    .map(({ protocol, port, loopbackOnly, v4 }) => (loopbackOnly ? { protocol, port, loopbackOnly: true, loopbackTarget: v4 ? "127.0.0.1" : "::1" } : { protocol, port, loopbackOnly: false }));
}
