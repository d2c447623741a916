/**
 * This host's links and routes as netd sees them (subnet choice, leftovers) and its
 * sysctls. The container datapath itself (bridges, veths, namespaces) is datapath.ts.
 */
import { writeFileSync } from "node:fs";
import { exec, execOk } from "./exec.ts";

export interface HostLink {
  name: string;
  addrs: string[];
}

/** Every interface of the host namespace with its IPv4 addresses (CIDR form). */
export async function listHostLinks(): Promise<HostLink[]> {
  const out = await execOk(["ip", "-j", "-4", "addr", "show"]);
  const links = JSON.parse(out || "[]") as { ifname: string; addr_info?: { local: string; prefixlen: number }[] }[];
  const all = JSON.parse((await execOk(["ip", "-j", "link", "show"])) || "[]") as { ifname: string }[];
  const addrs = new Map(links.map((l) => [l.ifname, (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`)]));
  return all.map((l) => ({ name: l.ifname, addrs: addrs.get(l.ifname) ?? [] }));
}

/** IPv4 destinations routed on the host (to avoid picking a colliding subnet). */
export async function hostRoutes(): Promise<string[]> {
  const out = await execOk(["ip", "-j", "-4", "route", "show", "table", "all"]);
  const routes = JSON.parse(out || "[]") as { dst: string; type?: string }[];
  return routes.filter((r) => r.dst && r.dst !== "default" && (r.type ?? "unicast") === "unicast").map((r) => (r.dst.includes("/") ? r.dst : `${r.dst}/32`));
}

export async function deleteLink(name: string): Promise<void> {
  await exec(["ip", "link", "del", name]);
}

export function writeSysctl(key: string, value: string): void {
  writeFileSync(`/proc/sys/${key}`, value);
}
