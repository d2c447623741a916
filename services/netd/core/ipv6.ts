/** IPv6 address and CIDR arithmetic for IPAM (addresses as 128-bit bigints). */
import { parseIp } from "./ipv4.ts";
import { NetworkError } from "./network-error.ts";

export interface Cidr6 {
  /** Network address (host bits cleared). */
  base: bigint;
  prefix: number;
}

const ALL = (1n << 128n) - 1n;

export function parseIp6(s: string): bigint | undefined {
  const text = s.trim();
  if (!text.includes(":") || text.includes("%")) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups.
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIp(item);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
      out.push(parseInt(item, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? fill : 0).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

/** RFC 5952 text: lowercase, the longest run of zero groups (2+) as "::". */
export function formatIp6(n: bigint): string {
  const g = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

export const mask6 = (prefix: number) => (prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL);

export function parseCidr6(s: string, what = "subnet"): Cidr6 {
  const [ip, len, extra] = s.trim().split("/");
  const addr = parseIp6(ip ?? "");
  const prefix = Number(len);
  if (addr === undefined || extra !== undefined || len === undefined || !/^\d+$/.test(len) || prefix > 128) {
    throw new NetworkError("invalid_argument", `invalid ${what} ${s}: invalid CIDR address: ${s}`);
  }
  return { base: addr & mask6(prefix), prefix };
}

export const isCidr6 = (s: string) => s.includes(":");
export const formatCidr6 = (c: Cidr6) => `${formatIp6(c.base)}/${c.prefix}`;
export const cidr6Last = (c: Cidr6) => c.base | (~mask6(c.prefix) & ALL);
export const cidr6Contains = (c: Cidr6, ip: bigint) => (ip & mask6(c.prefix)) === c.base;
export const cidrs6Overlap = (a: Cidr6, b: Cidr6) => a.base <= cidr6Last(b) && b.base <= cidr6Last(a);
/** fe80::/10: where link-local addresses live. */
export const isLinkLocal6 = (ip: bigint) => ip >> 118n === 0x3fan;
