/**
 * IPAM for bridge networks: picks free subnets from ArcBox's own pool (never one the
 * host already routes), validates user-given subnets/gateways/ranges, and hands out
 * addresses (lowest free one, or a requested static one).
 */
import { cidrContains, cidrLast, cidrsOverlap, formatCidr, formatIp, parseCidr, parseIp, type Cidr } from "./ipv4.ts";
import { randomBytes } from "node:crypto";
import { cidr6Contains, cidr6Last, cidrs6Overlap, formatCidr6, formatIp6, isCidr6, parseCidr6, parseIp6, type Cidr6 } from "./ipv6.ts";
import type { IpamPool, NetworkRecord } from "./model.ts";
import { NetworkError } from "./network-error.ts";

/** ArcBox's address pool, carved into /24s: far from Docker's 172.17+/16s and 192.168. */
const POOL_BASES = ["10.213.0.0/16", "10.214.0.0/16", "10.215.0.0/16"].map((c) => parseCidr(c));
const POOL_PREFIX = 24;

export function pickSubnet(taken: Cidr[]): IpamPool {
  for (const pool of POOL_BASES) {
    for (let base = pool.base; base < cidrLast(pool); base += 2 ** (32 - POOL_PREFIX)) {
      const c = { base, prefix: POOL_PREFIX };
      if (!taken.some((t) => cidrsOverlap(t, c))) return { subnet: formatCidr(c), gateway: formatIp(base + 1) };
    }
  }
  throw new NetworkError("unavailable", "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network");
}

export function networkCidrs(nets: NetworkRecord[]): Cidr[] {
  return nets.flatMap((n) => n.pools.map((p) => parseCidr(p.subnet)));
}

/** Normalises user IPAM config; throws Docker's errors for bad or overlapping input. */
export function validatePools(pools: IpamPool[], existing: NetworkRecord[]): IpamPool[] {
  const taken = networkCidrs(existing);
  const out: IpamPool[] = [];
  for (const p of pools) {
    // dockerd refuses a pool without a subnet ({"Subnet": null}) with its CIDR error.
    if (!p.subnet) throw new NetworkError("invalid_argument", `invalid subnet ${p.subnet} : invalid CIDR address: ${p.subnet}`);
    const subnet = parseCidr(p.subnet);
    if (subnet.prefix > 30) throw new NetworkError("invalid_argument", `invalid subnet ${p.subnet}: too small for a network`);
    if (taken.some((t) => cidrsOverlap(t, subnet))) {
      throw new NetworkError("permission_denied", `invalid pool request: Pool overlaps with other one on this address space`);
    }
    let gateway = subnet.base + 1;
    if (p.gateway) {
      const gw = parseIp(p.gateway);
      if (gw === undefined) throw new NetworkError("invalid_argument", `invalid gateway address ${p.gateway}`);
      if (!cidrContains(subnet, gw)) throw new NetworkError("invalid_argument", `no matching subnet for gateway ${p.gateway}`);
      gateway = gw;
    }
    let ipRange: string | undefined;
    if (p.ipRange) {
      const r = parseCidr(p.ipRange, "ip-range");
      if (!cidrContains(subnet, r.base) || !cidrContains(subnet, cidrLast(r))) {
        throw new NetworkError("invalid_argument", `no matching subnet for range ${p.ipRange}`);
      }
      ipRange = formatCidr(r);
    }
    for (const [name, ip] of Object.entries(p.auxAddresses ?? {})) {
      const a = parseIp(ip);
      if (a === undefined || !cidrContains(subnet, a)) throw new NetworkError("invalid_argument", `no matching subnet for aux-address ${name}=${ip}`);
    }
    taken.push(subnet);
    out.push({
      subnet: formatCidr(subnet),
      gateway: formatIp(gateway),
      ...(ipRange ? { ipRange } : {}),
      ...(p.auxAddresses && Object.keys(p.auxAddresses).length ? { auxAddresses: p.auxAddresses } : {}),
      ...(p.gateway ? {} : { implicitGateway: true }),
    });
  }
  return out;
}

/** Picks an address in the network's first pool: `requested` if free, else the lowest free one. */
export function allocateIp(net: NetworkRecord, used: Set<string>, requested?: string): { ip: string; prefixLen: number; gateway: string } {
  const pool = net.pools[0];
  if (!pool) throw new NetworkError("failed_precondition", `network ${net.name} has no IPv4 pool`);
  const subnet = parseCidr(pool.subnet);
  const reserved = new Set([pool.gateway, ...Object.values(pool.auxAddresses ?? {}), ...used]);
  if (requested) {
    const r = parseIp(requested);
    if (r === undefined) throw new NetworkError("invalid_argument", `invalid IPv4 address: ${requested}`);
    // A static address may lie anywhere in the subnet (Docker allows it outside --ip-range).
    if (!cidrContains(subnet, r)) {
      throw new NetworkError("invalid_argument", `invalid endpoint settings: no configured subnet or ip-range contain the IP address ${requested}`);
    }
    if (r === subnet.base || r === cidrLast(subnet)) throw new NetworkError("invalid_argument", `invalid endpoint settings: ${requested} is not a usable host address`);
    if (reserved.has(requested)) throw new NetworkError("conflict", `Address already in use: ${requested} is already allocated in network ${net.name}`);
    return { ip: requested, prefixLen: subnet.prefix, gateway: pool.gateway };
  }
  const range = pool.ipRange ? parseCidr(pool.ipRange) : subnet;
  for (let a = Math.max(range.base, subnet.base + 1); a <= Math.min(cidrLast(range), cidrLast(subnet) - 1); a++) {
    const ip = formatIp(a);
    if (!reserved.has(ip)) return { ip, prefixLen: subnet.prefix, gateway: pool.gateway };
  }
  throw new NetworkError("unavailable", `no available IPv4 addresses on network ${net.name}`);
}

/** Docker-style MAC from the IPv4 address: 02:42:a:b:c:d. */
export function macForIp(ip: string): string {
  return ["02", "42", ...ip.split(".").map((p) => Number(p).toString(16).padStart(2, "0"))].join(":");
}

// ---- IPv6 ----

/** The user's pools, IPv4 ones and IPv6 ones (a subnet with a colon). */
export function splitPools(pools: IpamPool[]): { v4: IpamPool[]; v6: IpamPool[] } {
  return { v4: pools.filter((p) => !isCidr6(p.subnet)), v6: pools.filter((p) => isCidr6(p.subnet)) };
}

export function networkCidrs6(nets: NetworkRecord[]): Cidr6[] {
  return nets.flatMap((n) => (n.pools6 ?? []).map((p) => parseCidr6(p.subnet)));
}

/** A network's IPv6 pool as given; dockerd's errors for bad, overlapping or extra ones. */
export function validatePools6(pools: IpamPool[], existing: NetworkRecord[]): IpamPool[] {
  if (pools.length > 1) throw new NetworkError("permission_denied", "bridge driver doesn't support multiple subnets");
  const taken = networkCidrs6(existing);
  return pools.map((p) => {
    const subnet = parseCidr6(p.subnet);
    if (subnet.prefix > 126) throw new NetworkError("invalid_argument", `invalid subnet ${p.subnet}: too small for a network`);
    if (taken.some((t) => cidrs6Overlap(t, subnet))) throw new NetworkError("permission_denied", "invalid pool request: Pool overlaps with other one on this address space");
    let gateway = subnet.base + 1n;
    if (p.gateway) {
      const gw = parseIp6(p.gateway);
      if (gw === undefined || !cidr6Contains(subnet, gw)) throw new NetworkError("invalid_argument", `failed to allocate gateway (${p.gateway}): Requested address is out of range`);
      gateway = gw;
    }
    let ipRange: string | undefined;
    if (p.ipRange) {
      const r = parseCidr6(p.ipRange, "ip-range");
      if (!cidr6Contains(subnet, r.base) || !cidr6Contains(subnet, cidr6Last(r))) throw new NetworkError("invalid_argument", `no matching subnet for range ${p.ipRange}`);
      ipRange = formatCidr6(r);
    }
    for (const [name, ip] of Object.entries(p.auxAddresses ?? {})) {
      const a = parseIp6(ip);
      if (a === undefined || !cidr6Contains(subnet, a)) throw new NetworkError("invalid_argument", `no matching subnet for aux-address ${name}=${ip}`);
    }
    return {
      subnet: formatCidr6(subnet),
      gateway: formatIp6(gateway),
      ...(ipRange ? { ipRange } : {}),
      ...(p.auxAddresses && Object.keys(p.auxAddresses).length ? { auxAddresses: p.auxAddresses } : {}),
      ...(p.gateway ? {} : { implicitGateway: true }),
    };
  });
}

/**
 * A /64 for an IPv6 network given no subnet: a random unique local prefix (fd00::/8,
 * RFC 4193), as Docker 27+ picks one (dockerd 20.10 had no default IPv6 pool).
 */
export function pickSubnet6(existing: NetworkRecord[]): IpamPool {
  const taken = networkCidrs6(existing);
  for (;;) {
    const bytes = randomBytes(7);
    let base = 0xfdn;
    for (const b of bytes) base = (base << 8n) | BigInt(b);
    const c = { base: base << 64n, prefix: 64 };
    if (!taken.some((t) => cidrs6Overlap(t, c))) return { subnet: formatCidr6(c), gateway: formatIp6(c.base + 1n) };
  }
}

/** An IPv6 address in the network's pool: `requested` if free, else the lowest free one. */
export function allocateIp6(net: NetworkRecord, used: Set<string>, requested?: string): { ip: string; prefixLen: number; gateway: string } {
  const pool = net.pools6?.[0];
  if (!pool) throw new NetworkError("failed_precondition", `network ${net.name} has no IPv6 pool`);
  const subnet = parseCidr6(pool.subnet);
  const reserved = new Set([pool.gateway, ...Object.values(pool.auxAddresses ?? {}).map((a) => formatIp6(parseIp6(a) ?? 0n)), ...used]);
  if (requested) {
    const r = parseIp6(requested);
    if (r === undefined) throw new NetworkError("invalid_argument", `invalid IPv6 address: ${requested}`);
    if (!cidr6Contains(subnet, r)) throw new NetworkError("invalid_argument", `Invalid address ${requested}: It does not belong to any of this network's subnets`);
    if (r === subnet.base) throw new NetworkError("invalid_argument", `invalid endpoint settings: ${requested} is not a usable host address`);
    const ip = formatIp6(r);
    if (reserved.has(ip)) throw new NetworkError("conflict", `Address already in use: ${requested} is already allocated in network ${net.name}`);
    return { ip, prefixLen: subnet.prefix, gateway: pool.gateway };
  }
  const range = pool.ipRange ? parseCidr6(pool.ipRange) : subnet;
  const last = cidr6Last(range);
  // The lowest free address: a few hundred candidates at most are ever looked at.
  for (let a = range.base > subnet.base ? range.base : subnet.base + 1n; a <= last; a++) {
    const ip = formatIp6(a);
    if (!reserved.has(ip)) return { ip, prefixLen: subnet.prefix, gateway: pool.gateway };
  }
  throw new NetworkError("unavailable", `no available IPv6 addresses on network ${net.name}`);
}
