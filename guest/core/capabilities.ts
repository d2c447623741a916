/** Linux capability sets: Docker's default set, the full set (privileged), CapAdd/CapDrop. */
import { readFileSync } from "node:fs";
import { ALL_CAPS, normalizeCapability } from "../../lib/capabilities.ts";
import { GuestError } from "./guest-error.ts";

export { ALL_CAPS };

/** Docker Engine's default capabilities (moby oci/caps/defaults.go). */
export const DOCKER_DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

function normalize(cap: string): string {
  const name = normalizeCapability(cap);
  if (!name) throw new GuestError("invalid_argument", `unknown capability: "${cap}"`);
  return name;
}

/**
 * The capabilities this agent may grant: its own bounding set (a sandboxed host may lack
 * some, e.g. CAP_SYS_RESOURCE, and runc fails to apply a cap it does not hold).
 */
let bounding: string[] | undefined;
export function grantableCaps(): string[] {
  if (bounding) return bounding;
  const hex = /CapBnd:\s+([0-9a-f]+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
  const mask = hex ? BigInt(`0x${hex}`) : (1n << BigInt(ALL_CAPS.length)) - 1n;
  bounding = ALL_CAPS.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
  return bounding;
}

/** The effective set: like Docker, "ALL" in add grants everything and in drop removes everything first. */
export function resolveCapabilities(add: string[], drop: string[], privileged: boolean): string[] {
  if (privileged) return [...grantableCaps()];
  const adds = add.map(normalize);
  const drops = drop.map(normalize);
  let caps = new Set(adds.includes("ALL") ? grantableCaps() : DOCKER_DEFAULT_CAPS);
  if (drops.includes("ALL")) caps = new Set();
  for (const d of drops) caps.delete(d);
  for (const a of adds) if (a !== "ALL") caps.add(a);
  return [...caps];
}
