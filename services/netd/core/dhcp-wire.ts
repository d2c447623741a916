/**
 * The DHCP wire format (RFC 2131 message, RFC 2132 options) as far as netd's server
 * needs it: parse a client's BOOTREQUEST, build a BOOTREPLY.
 */
import { parseIp } from "./ipv4.ts";

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
const MAGIC_COOKIE = 0x63825363;
const HEADER_LEN = 236;
/** BOOTP's minimum message size; some clients drop shorter replies. */
const MIN_LEN = 300;

export const DHCP = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;

export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  BROADCAST: 28,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_LIST: 55,
  MESSAGE: 56,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  CLIENT_ID: 61,
  END: 255,
} as const;

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address, lower-case "aa:bb:..." (hlen bytes). */
  chaddr: string;
  /** Option code -> raw value (the first occurrence; repeated codes are concatenated, RFC 3396). */
  options: Map<number, Uint8Array>;
}

/** undefined for anything that is not a well-formed DHCP message. */
export function parseDhcp(buf: Uint8Array): DhcpMessage | undefined {
  if (buf.length < HEADER_LEN + 4) return undefined;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint32(HEADER_LEN) !== MAGIC_COOKIE) return undefined;
  const hlen = buf[2];
  if (hlen > 16) return undefined;
  const options = parseOptions(buf.subarray(HEADER_LEN + 4));
  if (!options) return undefined;
  // Option overload (52): the file and/or sname fields carry more options.
  const overload = options.get(OPT.OVERLOAD)?.[0] ?? 0;
  for (const [flag, start, len] of [
    [1, 108, 128],
    [2, 44, 64],
  ] as const) {
    if (!(overload & flag)) continue;
    const more = parseOptions(buf.subarray(start, start + len));
    if (!more) return undefined;
    for (const [k, val] of more) if (!options.has(k)) options.set(k, val);
  }
  return {
    op: buf[0],
    htype: buf[1],
    hlen,
    hops: buf[3],
    xid: v.getUint32(4),
    secs: v.getUint16(8),
    flags: v.getUint16(10),
    ciaddr: ipAt(buf, 12),
    yiaddr: ipAt(buf, 16),
    siaddr: ipAt(buf, 20),
    giaddr: ipAt(buf, 24),
    chaddr: [...buf.subarray(28, 28 + hlen)].map((b) => b.toString(16).padStart(2, "0")).join(":"),
    options,
  };
}

function parseOptions(b: Uint8Array): Map<number, Uint8Array> | undefined {
  const out = new Map<number, Uint8Array>();
  let i = 0;
  while (i < b.length) {
    const code = b[i];
    if (code === OPT.END) break;
    if (code === OPT.PAD) {
      i++;
      continue;
    }
    if (i + 1 >= b.length) return undefined;
    const len = b[i + 1];
    if (i + 2 + len > b.length) return undefined;
    const val = b.subarray(i + 2, i + 2 + len);
    const prev = out.get(code);
    if (prev) {
      const joined = new Uint8Array(prev.length + val.length);
      joined.set(prev);
      joined.set(val, prev.length);
      out.set(code, joined);
    } else {
      out.set(code, val);
    }
    i += 2 + len;
  }
  return out;
}

function ipAt(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

export const messageType = (m: DhcpMessage) => m.options.get(OPT.MESSAGE_TYPE)?.[0];

/** An option holding one IPv4 address (requested IP, server ID), if well-formed. */
export function optionIp(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  return v && v.length === 4 ? ipAt(v, 0) : undefined;
}

export function optionText(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  // Some clients NUL-terminate strings.
  return v ? new TextDecoder().decode(v).replace(/\0+$/, "") : undefined;
}

/** One reply option: code and value (addresses, 32-bit numbers and text are encoded by the helpers below). */
export type DhcpOption = [code: number, value: Uint8Array];

export const ipOption = (code: number, ...ips: string[]): DhcpOption => {
  const v = new Uint8Array(4 * ips.length);
  const view = new DataView(v.buffer);
  for (const [i, ip] of ips.entries()) view.setUint32(i * 4, parseIp(ip) ?? 0);
  return [code, v];
};
export const u32Option = (code: number, n: number): DhcpOption => {
  const v = new Uint8Array(4);
  new DataView(v.buffer).setUint32(0, n >>> 0);
  return [code, v];
};
export const u8Option = (code: number, n: number): DhcpOption => [code, Uint8Array.of(n)];
export const textOption = (code: number, s: string): DhcpOption => [code, new TextEncoder().encode(s).subarray(0, 255)];

export interface DhcpReply {
  request: DhcpMessage;
  yiaddr: string;
  siaddr?: string;
  options: DhcpOption[];
}

/** A BOOTREPLY to `request` (xid, flags, giaddr and chaddr echoed), padded to 300 bytes. */
export function buildReply(r: DhcpReply): Uint8Array {
  const optLen = r.options.reduce((n, [, v]) => n + 2 + v.length, 0) + 1;
  const out = new Uint8Array(Math.max(MIN_LEN, HEADER_LEN + 4 + optLen));
  const v = new DataView(out.buffer);
  const q = r.request;
  out[0] = BOOTREPLY;
  out[1] = q.htype;
  out[2] = q.hlen;
  v.setUint32(4, q.xid);
  v.setUint16(10, q.flags);
  v.setUint32(12, parseIp(q.ciaddr) ?? 0);
  v.setUint32(16, parseIp(r.yiaddr) ?? 0);
  v.setUint32(20, parseIp(r.siaddr ?? "0.0.0.0") ?? 0);
  v.setUint32(24, parseIp(q.giaddr) ?? 0);
  for (const [i, h] of q.chaddr.split(":").entries()) out[28 + i] = parseInt(h, 16);
  v.setUint32(HEADER_LEN, MAGIC_COOKIE);
  let off = HEADER_LEN + 4;
  for (const [code, val] of r.options) {
    out[off] = code;
    out[off + 1] = val.length;
    out.set(val, off + 2);
    off += 2 + val.length;
  }
  out[off] = OPT.END;
  return out;
}

/** A client-side BOOTREQUEST (tests and tools): message type, chaddr, xid and extra options. */
export function buildRequest(o: { xid: number; chaddr: string; type: number; ciaddr?: string; flags?: number; options?: DhcpOption[] }): Uint8Array {
  const base = buildReply({
    request: {
      op: BOOTREQUEST,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: o.xid,
      secs: 0,
      flags: o.flags ?? 0,
      ciaddr: o.ciaddr ?? "0.0.0.0",
      yiaddr: "0.0.0.0",
      siaddr: "0.0.0.0",
      giaddr: "0.0.0.0",
      chaddr: o.chaddr,
      options: new Map(),
    },
    yiaddr: "0.0.0.0",
    options: [u8Option(OPT.MESSAGE_TYPE, o.type), ...(o.options ?? [])],
  });
  base[0] = BOOTREQUEST;
  return base;
}
