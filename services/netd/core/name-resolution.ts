/**
 * Who is who for the embedded DNS: names (container name, aliases, short ID, also as
 * "name.network") and reverse lookups, scoped to the networks the asking container is
 * on; and a container's own --dns servers to forward to.
 */
import type { NetState } from "./state.ts";

export class NameResolution {
  constructor(private readonly state: NetState) {}

  /** Answers embedded-DNS questions from the container at `askerIp`. */
  lookup(askerIp: string, name: string): string[] | undefined {
    const asker = [...this.state.endpoints.values()].find((e) => e.ip === askerIp);
    const scope = asker ? new Set(this.state.endpointsOf(asker.containerId).map((e) => e.networkId)) : new Set([...this.state.networks.values()].filter((n) => !n.isDefault).map((n) => n.id));
    const ips: string[] = [];
    // A legacy link's alias names its container for the linking endpoint only.
    const linked = new Map<string, Set<string>>();
    for (const e of asker ? this.state.endpointsOf(asker.containerId) : []) {
      for (const l of e.links ?? []) {
        const [target = "", alias = target] = l.split(":");
        if (alias.toLowerCase() === name) linked.set(e.networkId, new Set([...(linked.get(e.networkId) ?? []), target.replace(/^\//, "").toLowerCase()]));
      }
    }
    for (const e of this.state.endpoints.values()) {
      const net = this.state.networks.get(e.networkId);
      if (!scope.has(e.networkId) || !net || net.isDefault) continue;
      const a = this.state.attachments.get(e.containerId);
      if (!a) continue;
      // "name" or "name.network", as Docker's embedded DNS answers.
      const suffix = `.${net.name.toLowerCase()}`;
      const bare = name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
      const names = [a.containerName.toLowerCase(), ...e.aliases.map((x) => x.toLowerCase()), e.containerId.slice(0, 12)];
      const byLink = linked.get(e.networkId);
      const linkHit = !!byLink && (byLink.has(a.containerName.toLowerCase()) || byLink.has(e.containerId.slice(0, 12)) || [...byLink].some((t) => t.length >= 12 && e.containerId.startsWith(t)));
      if (!names.includes(name) && !names.includes(bare) && !linkHit) continue;
      // IPv4 and (on an IPv6 network) IPv6 addresses: the server answers A or AAAA.
      for (const ip of [e.ip, e.ip6]) if (ip && !ips.includes(ip)) ips.push(ip);
    }
    return ips.length ? ips : undefined;
  }

  /** Reverse lookup: "name.network" of the container at `ip`, on a network the asker shares. */
  reverseLookup(askerIp: string, ip: string): string | undefined {
    const asker = [...this.state.endpoints.values()].find((e) => e.ip === askerIp);
    const scope = asker ? new Set(this.state.endpointsOf(asker.containerId).map((e) => e.networkId)) : undefined;
    for (const e of this.state.endpoints.values()) {
      if (e.ip !== ip || (scope && !scope.has(e.networkId))) continue;
      const net = this.state.networks.get(e.networkId);
      const a = this.state.attachments.get(e.containerId);
      if (net && !net.isDefault && a) return `${a.containerName}.${net.name}`;
    }
    return undefined;
  }

  /** A container's own --dns servers (Docker forwards its embedded DNS to them), if any. */
  dnsServersOf(askerIp: string): string[] | undefined {
    const ep = [...this.state.endpoints.values()].find((e) => e.ip === askerIp);
    const dns = ep ? this.state.attachments.get(ep.containerId)?.dns : undefined;
    return dns?.length ? dns : undefined;
  }
}
