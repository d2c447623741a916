/** Linux capability sets: Docker's default set, the full set (privileged), CapAdd/CapDrop. */
import { readFileSync } from "node:fs";
import { GuestError } from "./guest-error.ts";

/** Docker Engine's default capabilities (moby oci/caps/defaults.go). */
export const DOCKER_DEFAULT_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/** Indexed by capability number (bit N of a capability mask). */
export const ALL_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",
  "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
  "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];
const KNOWN = new Set(ALL_CAPS);

function normalize(cap: string): string {
  const upper = cap.trim().toUpperCase();
  if (upper === "ALL") return "ALL";
  const name = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  if (!KNOWN.has(name)) throw new GuestError("invalid_argument", `unknown capability: "${cap}"`);
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
