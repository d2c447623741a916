/** The few bits of the DNS wire format (RFC 1035) the embedded resolver needs. */
import { parseIp6 } from "./ipv6.ts";

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const TYPE_PTR = 12;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;

export interface DnsQuestion {
  id: number;
  /** Lower-cased, without the trailing dot. */
  name: string;
  type: number;
  klass: number;
  /** Byte offset just past the question section. */
  questionEnd: number;
  recursionDesired: boolean;
}

/** Parses the header and first question; undefined for anything that is not a plain query. */
export function parseQuery(msg: Uint8Array): DnsQuestion | undefined {
  if (msg.length < 12) return undefined;
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const flags = view.getUint16(2);
  if (flags & 0x8000 || view.getUint16(4) < 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  while (off < msg.length) {
    const len = msg[off];
    if (len === 0) break;
    if (len > 63 || off + 1 + len > msg.length) return undefined;
    labels.push(new TextDecoder().decode(msg.subarray(off + 1, off + 1 + len)));
    off += 1 + len;
  }
  if (off + 5 > msg.length) return undefined;
  return {
    id: view.getUint16(0),
    name: labels.join(".").toLowerCase(),
    type: view.getUint16(off + 1),
    klass: view.getUint16(off + 3),
    questionEnd: off + 5,
    recursionDesired: (flags & 0x0100) !== 0,
  };
}

/** An authoritative answer echoing the question, with A records (empty: NODATA). */
/** An answer with A records for IPv4 addresses and AAAA records for IPv6 ones. */
export function buildAnswer(query: Uint8Array, q: DnsQuestion, ips: string[], ttl = 600, rcode = 0): Uint8Array {
  const rdata = ips.map((ip) => (ip.includes(":") ? ip6Bytes(ip) : new Uint8Array(ip.split(".").map(Number))));
  const answerLen = rdata.reduce((n, r) => n + 12 + r.length, 0);
  const out = new Uint8Array(q.questionEnd + answerLen);
  out.set(query.subarray(0, q.questionEnd));
  const view = new DataView(out.buffer);
  // QR, AA, RD copied, RA.
  view.setUint16(2, 0x8400 | (q.recursionDesired ? 0x0100 : 0) | 0x0080 | rcode);
  view.setUint16(4, 1);
  view.setUint16(6, ips.length);
  view.setUint16(8, 0);
  view.setUint16(10, 0);
  let off = q.questionEnd;
  for (const r of rdata) {
    view.setUint16(off, 0xc00c); // pointer to the question name
    view.setUint16(off + 2, r.length === 16 ? TYPE_AAAA : TYPE_A);
    view.setUint16(off + 4, 1);
    view.setUint32(off + 6, ttl);
    view.setUint16(off + 10, r.length);
    out.set(r, off + 12);
    off += 12 + r.length;
  }
  return out;
}

function ip6Bytes(ip: string): Uint8Array {
  const n = parseIp6(ip) ?? 0n;
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number((n >> BigInt(120 - 8 * i)) & 0xffn);
  return out;
}

export function buildError(query: Uint8Array, q: DnsQuestion, rcode: number): Uint8Array {
  return buildAnswer(query, q, [], 0, rcode);
}

/** A PTR answer (reverse lookup) pointing at `target`. */
export function buildPtrAnswer(query: Uint8Array, q: DnsQuestion, target: string, ttl = 600): Uint8Array {
  const labels = target
    .split(".")
    .filter(Boolean)
    .map((l) => new TextEncoder().encode(l));
  const rdata = new Uint8Array(labels.reduce((n, l) => n + 1 + l.length, 1));
  let r = 0;
  for (const l of labels) {
    rdata[r++] = l.length;
    rdata.set(l, r);
    r += l.length;
  }
  const out = new Uint8Array(q.questionEnd + 12 + rdata.length);
  out.set(query.subarray(0, q.questionEnd));
  const view = new DataView(out.buffer);
  view.setUint16(2, 0x8400 | (q.recursionDesired ? 0x0100 : 0) | 0x0080);
  view.setUint16(4, 1);
  view.setUint16(6, 1);
  view.setUint16(8, 0);
  view.setUint16(10, 0);
  const off = q.questionEnd;
  view.setUint16(off, 0xc00c);
  view.setUint16(off + 2, TYPE_PTR);
  view.setUint16(off + 4, 1);
  view.setUint32(off + 6, ttl);
  view.setUint16(off + 10, rdata.length);
  out.set(rdata, off + 12);
  return out;
}

/** "4.3.2.1.in-addr.arpa" -> "1.2.3.4"; undefined for anything else. */
export function reverseName(name: string): string | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(name);
  return m ? `${m[4]}.${m[3]}.${m[2]}.${m[1]}` : undefined;
}
