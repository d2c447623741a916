/**
 * Legacy container links (`--link name[:alias]`), as Docker keeps them:
 *   - on the default bridge, HostConfig.Links holds "/child:/parent/alias"; at start the
 *     child must be running, and the parent gets the child's ports, name and env as
 *     ALIAS_* variables and an /etc/hosts line "ip alias hostname name";
 *   - on a user network a link is only a name: it goes to the endpoint's Links
 *     (EndpointSettings.Links, "child:alias"), nothing is checked, no variables or
 *     hosts lines are added, and netd's embedded DNS answers the alias for this
 *     container only.
 */
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";

type Lookup = (ref: string) => ContainerRecord;

const isDefaultBridge = (mode: string) => mode === "" || mode === "default" || mode === "bridge";

function splitLink(link: string): { name: string; alias: string } {
  const [name = "", alias] = link.split(":");
  const bare = name.replace(/^\//, "");
  return { name: bare, alias: (alias ?? bare).replace(/^\//, "") };
}

/**
 * At create: HostConfig.Links normalized for the default bridge (each child checked as
 * dockerd checks it), or moved to the user network's endpoint settings.
 */
export function resolveLinks(hostConfig: { Links?: unknown; NetworkMode?: unknown }, endpointsConfig: Record<string, unknown>, parentName: string, lookup: Lookup): void {
  const links = (Array.isArray(hostConfig.Links) ? hostConfig.Links : []) as string[];
  if (!links.length) {
    hostConfig.Links = null;
    return;
  }
  const mode = String(hostConfig.NetworkMode ?? "");
  if (mode === "host") throw new ContainerError("invalid_argument", "conflicting options: host type networking can't be used with links. This would result in undefined behavior");
  if (mode.startsWith("container:")) throw new ContainerError("invalid_argument", "conflicting options: container type network can't be used with links. This would result in undefined behavior");
  if (!isDefaultBridge(mode)) {
    const ep = (endpointsConfig[mode] ?? {}) as Record<string, unknown>;
    endpointsConfig[mode] = { ...ep, Links: links };
    hostConfig.Links = null;
    return;
  }
  hostConfig.Links = links.map((l) => {
    const { name, alias } = splitLink(l);
    let child: ContainerRecord;
    try {
      child = lookup(name);
    } catch (err) {
      throw new ContainerError("not_found", `could not get container for ${name}: ${(err as Error).message}`);
    }
    if (!isDefaultBridge(String(child.hostConfig.NetworkMode ?? ""))) {
      throw new ContainerError("invalid_argument", `Cannot link to ${child.name}, as it does not belong to the default network`);
    }
    return `${child.name}:${parentName}/${alias}`;
  });
}

export interface LinkedView {
  /** ALIAS_* variables, before the container's own Env (which wins). */
  env: string[];
  /** ExtraHosts-style entries "alias hostname name:ip". */
  hosts: string[];
}

/** At start on the default bridge: each child's address, ports and env (children must run). */
export function linkedView(rec: ContainerRecord, lookup: Lookup): LinkedView {
  const out: LinkedView = { env: [], hosts: [] };
  if (!isDefaultBridge(String(rec.hostConfig.NetworkMode ?? ""))) return out;
  for (const link of (rec.hostConfig.Links ?? []) as string[]) {
    const [childName = "", linkName = ""] = link.split(":");
    const alias = linkName.slice(linkName.lastIndexOf("/") + 1);
    let child: ContainerRecord | undefined;
    try {
      child = lookup(childName);
    } catch {
      // A child removed since: dockerd answers as for a stopped one.
    }
    const alive = child && (child.state.status === "running" || child.state.status === "paused");
    const ip = alive ? child?.network?.endpoints.find((e) => e.networkName === "bridge")?.ipAddress : undefined;
    if (!child || !ip) throw new ContainerError("conflict", `Cannot link to a non running container: ${childName} AS ${linkName}`);
    out.env.push(...linkEnv(alias, linkName, ip, Object.keys(child.config.ExposedPorts ?? {}), (child.config.Env ?? []) as string[]));
    const names = [alias, String(child.config.Hostname || child.id.slice(0, 12))];
    if (alias !== child.name.slice(1)) names.push(child.name.slice(1));
    out.hosts.push(`${names.join(" ")}:${ip}`);
  }
  return out;
}

/** Docker's Link.ToEnv (daemon/links), with dockerd 20.10's port order: by number, tcp first. */
export function linkEnv(alias: string, linkName: string, ip: string, exposed: string[], childEnv: string[]): string[] {
  const prefix = alias.toUpperCase().replaceAll("-", "_");
  const ports = exposed
    .map((k) => {
      const [port = "", proto = "tcp"] = k.split("/");
      return { port: Number(port), proto: proto.toLowerCase() };
    })
    .filter((p) => Number.isInteger(p.port))
    .sort((a, b) => a.port - b.port || (a.proto === "tcp" ? -1 : b.proto === "tcp" ? 1 : 0));
  const env: string[] = [];
  if (ports[0]) env.push(`${prefix}_PORT=${ports[0].proto}://${ip}:${ports[0].port}`);
  const key = (p: { port: number; proto: string }) => `${prefix}_PORT_${p.port}_${p.proto.toUpperCase()}`;
  // Runs of consecutive ports also get _START/_END variables.
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1]!.port === ports[j]!.port + 1) j++;
    if (j > i + 1) {
      const p = ports[i]!;
      const q = ports[j]!;
      env.push(`${key(p)}_START=${p.proto}://${ip}:${p.port}`, `${key(p)}_ADDR=${ip}`, `${key(p)}_PROTO=${p.proto}`, `${key(p)}_PORT_START=${p.port}`);
      env.push(`${prefix}_PORT_${p.port}_${q.proto.toUpperCase()}_END=${q.proto}://${ip}:${q.port}`, `${prefix}_PORT_${p.port}_${q.proto.toUpperCase()}_PORT_END=${q.port}`);
      i = j + 1;
    } else i++;
  }
  for (const p of ports) env.push(`${key(p)}=${p.proto}://${ip}:${p.port}`, `${key(p)}_ADDR=${ip}`, `${key(p)}_PORT=${p.port}`, `${key(p)}_PROTO=${p.proto}`);
  env.push(`${prefix}_NAME=${linkName}`);
  for (const v of childEnv) {
    const eq = v.indexOf("=");
    if (eq < 0) continue;
    const k = v.slice(0, eq);
    // Set by image builds, not the child's own (Docker leaves them out).
    if (k === "HOME" || k === "PATH") continue;
    env.push(`${prefix}_ENV_${k}=${v.slice(eq + 1)}`);
  }
  return env;
}

/**
 * `DELETE /containers/{/parent/alias}?link=1` (docker rm --link): the parent and its
 * HostConfig.Links without that link, with dockerd's answers for a name that is no link.
 */
export function linkRemoval(ref: string, lookup: Lookup): { parent: ContainerRecord; links: string[] | null } {
  const name = ref.startsWith("/") ? ref : `/${ref}`;
  const cut = name.lastIndexOf("/");
  const missing = () => new ContainerError("not_found", `No such container: ${name.slice(1)}`);
  if (cut === 0) {
    lookup(name.slice(1));
    throw new ContainerError("conflict", "Conflict, cannot remove the default link name of the container");
  }
  let parent: ContainerRecord;
  try {
    parent = lookup(name.slice(1, cut));
  } catch {
    throw missing();
  }
  const links = (parent.hostConfig.Links ?? []) as string[];
  const kept = links.filter((l) => l.slice(l.indexOf(":") + 1) !== name);
  if (kept.length === links.length) throw missing();
  return { parent, links: kept.length ? kept : null };
}
