/** Contents of a container's /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker writes them. */

export interface HostsEntry {
  ip: string;
  names: string[];
}

const LOCAL_HOSTS = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", "fe00::\tip6-localnet", "ff00::\tip6-mcastprefix", "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"];

export function hostsFile(extra: HostsEntry[], own: HostsEntry[]): string {
  const lines = [...LOCAL_HOSTS];
  for (const e of [...extra, ...own]) lines.push(`${e.ip}\t${e.names.join(" ")}`);
  return `${lines.join("\n")}\n`;
}

/** "name:ip" (or "name=ip") extra hosts; "host-gateway" becomes `gateway`. */
export function parseExtraHosts(entries: string[], gateway: string): HostsEntry[] {
  return entries.map((e) => {
    const sep = e.includes("=") ? e.indexOf("=") : e.indexOf(":");
    const name = e.slice(0, sep);
    const ip = e.slice(sep + 1);
    return { names: [name], ip: ip === "host-gateway" ? gateway : ip };
  });
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const r: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === "nameserver" && rest[0]) r.nameservers.push(rest[0]);
    else if (key === "search" || key === "domain") r.search = rest;
    else if (key === "options") r.options.push(...rest);
  }
  return r;
}

export function isLoopbackResolver(ip: string): boolean {
  return ip.startsWith("127.") || ip === "::1";
}

export function resolvConfFile(c: ResolvConf, comment?: string): string {
  const lines: string[] = [];
  if (comment) lines.push(`# ${comment}`);
  if (c.search.length) lines.push(`search ${c.search.join(" ")}`);
  for (const ns of c.nameservers) lines.push(`nameserver ${ns}`);
  if (c.options.length) lines.push(`options ${c.options.join(" ")}`);
  return `${lines.join("\n")}\n`;
}
