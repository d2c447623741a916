/**
 * Registry settings from `$ARCBOX_HOME/daemon.json` (Docker's keys):
 * `registry-mirrors` (tried before Docker Hub) and `insecure-registries` (plain HTTP
 * or unverified TLS allowed; host[:port] or CIDR). Loopback is always insecure, as in Docker.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BlockList, isIP } from "node:net";

export interface RegistryConfig {
  mirrors: string[];
  insecure: string[];
}

export function loadRegistryConfig(homeRoot: string): RegistryConfig {
  try {
    const raw = JSON.parse(readFileSync(join(homeRoot, "daemon.json"), "utf8")) as Record<string, unknown>;
    const list = (v: unknown) => (Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : []);
    return { mirrors: list(raw["registry-mirrors"]).map((m) => m.replace(/\/+$/, "")), insecure: list(raw["insecure-registries"]) };
  } catch {
    return { mirrors: [], insecure: [] };
  }
}

function hostOnly(hostPort: string): string {
  if (hostPort.startsWith("[")) return hostPort.slice(1, hostPort.indexOf("]"));
  const i = hostPort.lastIndexOf(":");
  return i > 0 && hostPort.indexOf(":") === i ? hostPort.slice(0, i) : hostPort;
}

/** True when `hostPort` may be reached over plain HTTP / unverified TLS. */
export function isInsecure(cfg: RegistryConfig, hostPort: string): boolean {
  const host = hostOnly(hostPort);
  if (host === "localhost" || host === "::1" || /^127\./.test(host)) return true;
  for (const entry of cfg.insecure) {
    if (entry === hostPort || entry === host) return true;
    if (entry.includes("/") && isIP(host)) {
      const [net, bits] = entry.split("/");
      const bl = new BlockList();
      try {
        bl.addSubnet(net!, Number(bits), isIP(net!) === 6 ? "ipv6" : "ipv4");
        if (bl.check(host, isIP(host) === 6 ? "ipv6" : "ipv4")) return true;
      } catch {}
    }
  }
  return false;
}
