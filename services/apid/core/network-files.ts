/**
 * /etc/hosts, /etc/hostname and /etc/resolv.conf for containers whose network apid
 * handles itself ("none" and "host" modes, which need no netd), written in the
 * container's directory under apid's data dir.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { HostConfig } from "./create-config.ts";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";
import type { NetworkInfo } from "./container-record.ts";

function hostResolvConf(dns: string[], search: string[], options: string[]): string {
  let text = "";
  try {
    text = readFileSync("/etc/resolv.conf", "utf8");
  } catch {}
  const lines = text.split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  const keep = lines.filter((l) => !(dns.length && l.startsWith("nameserver")) && !(search.length && l.startsWith("search")) && !(options.length && l.startsWith("options")));
  for (const ns of dns) keep.push(`nameserver ${ns}`);
  if (search.length) keep.push(`search ${search.join(" ")}`);
  if (options.length) keep.push(`options ${options.join(" ")}`);
  return `${keep.join("\n")}\n`;
}

export function writeLocalNetworkFiles(dir: string, mode: "none" | "host", hostname: string, hostConfig: HostConfig): NetworkInfo {
  const hostsPath = join(dir, "hosts");
  const hostnamePath = join(dir, "hostname");
  const resolvConfPath = join(dir, "resolv.conf");
  const name = mode === "host" ? osHostname() : hostname;
  let hosts =
    mode === "host"
      ? readFileSync("/etc/hosts", "utf8")
      : `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`;
  for (const entry of hostConfig.ExtraHosts ?? []) {
    const i = entry.indexOf(":");
    const [host, ip] = i < 0 ? [entry, ""] : [entry.slice(0, i), entry.slice(i + 1)];
    // host-gateway needs a bridge; with none/host the host itself is the gateway.
    hosts += `${ip === "host-gateway" ? "127.0.0.1" : ip}\t${host}\n`;
  }
  writeFileSync(hostsPath, hosts);
  writeFileSync(hostnamePath, `${name}\n`);
  writeFileSync(resolvConfPath, hostResolvConf(hostConfig.Dns ?? [], hostConfig.DnsSearch ?? [], hostConfig.DnsOptions ?? []));
  return { netnsPath: "", hostNetwork: mode === "host", hostsPath, resolvConfPath, hostnamePath, endpoints: [], ports: [] };
}
