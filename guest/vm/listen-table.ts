/**
 * The TCP listeners of the machine, from /proc/net/tcp and /proc/net/tcp6: which ports
 * the host should reach, and which of them only listen on the machine's loopback.
 */

export interface Listener {
  /** Dotted IPv4 or full-form IPv6 ("::" wildcard, "::1" loopback kept short). */
  address: string;
  port: number;
  loopback: boolean;
}

export interface ListenPort {
  port: number;
  /** Every listener of the port is bound to a loopback address. */
  loopbackOnly: boolean;
  /** With loopbackOnly: where to connect to reach it ("127.0.0.1" when any is IPv4, else "::1"). */
  loopbackTarget?: string;
}

const TCP_LISTEN = "0A";

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

/** The LISTEN rows of one /proc/net/tcp{,6} text. */
export function parseListeners(text: string, v6: boolean): Listener[] {
  const out: Listener[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== TCP_LISTEN) continue;
    const [addrHex, portHex] = f[1]!.split(":");
    if (!addrHex || !portHex) continue;
    const port = Number.parseInt(portHex, 16);
    if (v6) out.push({ ...parseV6(addrHex), port });
    else {
      const address = ipv4(addrHex);
      out.push({ address, port, loopback: address.startsWith("127.") });
    }
  }
  return out;
}

/** One entry per port, sorted; `ignore` drops listeners (the agent's own proxies). */
export function listenPorts(listeners: Listener[], ignore: (l: Listener) => boolean = () => false): ListenPort[] {
  const byPort = new Map<number, { loopbackOnly: boolean; v4: boolean }>();
  for (const l of listeners) {
    if (ignore(l)) continue;
    const seen = byPort.get(l.port) ?? { loopbackOnly: true, v4: false };
    byPort.set(l.port, { loopbackOnly: seen.loopbackOnly && l.loopback, v4: seen.v4 || !l.address.includes(":") || l.address.startsWith("::ffff:") });
  }
  return [...byPort]
    .sort((a, b) => a[0] - b[0])
    .map(([port, s]) => (s.loopbackOnly ? { port, loopbackOnly: true, loopbackTarget: s.v4 ? "127.0.0.1" : "::1" } : { port, loopbackOnly: false }));
}
