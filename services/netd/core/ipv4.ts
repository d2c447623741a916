/** IPv4 address and CIDR arithmetic for IPAM (addresses as unsigned 32-bit numbers). */
import { NetworkError } from "./network-error.ts";

export interface Cidr {
  /** Network address (host bits cleared). */
  base: number;
  prefix: number;
}

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]) >>> 0;
}

export function formatIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(s: string, what = "subnet"): Cidr {
  const [ip, len, extra] = s.trim().split("/");
  const addr = parseIp(ip ?? "");
  const prefix = Number(len);
  if (addr === undefined || extra !== undefined || len === undefined || !/^\d+$/.test(len) || prefix > 32) {
    throw new NetworkError("invalid_argument", `invalid ${what} ${s}: invalid CIDR address: ${s}`);
  }
  return { base: (addr & maskOf(prefix)) >>> 0, prefix };
}

export const formatCidr = (c: Cidr) => `${formatIp(c.base)}/${c.prefix}`;
export const cidrSize = (c: Cidr) => 2 ** (32 - c.prefix);
export const cidrLast = (c: Cidr) => c.base + cidrSize(c) - 1;
export const cidrContains = (c: Cidr, ip: number) => (ip & maskOf(c.prefix)) >>> 0 === c.base;
export const cidrsOverlap = (a: Cidr, b: Cidr) => a.base <= cidrLast(b) && b.base <= cidrLast(a);
