/**
 * IPAM for bridge networks: picks free subnets from ArcBox's own pool (never one the
 * host already routes), validates user-given subnets/gateways/ranges, and hands out
 * addresses (lowest free one, or a requested static one).
 */
import { cidrContains, cidrLast, cidrsOverlap, formatCidr, formatIp, parseCidr, parseIp, type Cidr } from "./ipv4.ts";
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
    out.push({ subnet: formatCidr(subnet), gateway: formatIp(gateway), ...(ipRange ? { ipRange } : {}), ...(p.auxAddresses && Object.keys(p.auxAddresses).length ? { auxAddresses: p.auxAddresses } : {}) });
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
