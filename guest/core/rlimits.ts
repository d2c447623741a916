/**
 * Docker's Ulimits as OCI rlimits. runc applies them in the container's init with
 * setrlimit(2), which cannot raise a hard limit above the runtime's own without
 * CAP_SYS_RESOURCE: such a request is refused here, naming the limit, instead of
 * failing inside runc.
 */
import { readFileSync } from "node:fs";
import type { Rlimit } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { GuestError } from "./guest-error.ts";

/** Docker's names and the rows of /proc/self/limits that hold the runtime's own values. */
const LIMIT_ROWS: Record<string, string> = {
  as: "Max address space",
  core: "Max core file size",
  cpu: "Max cpu time",
  data: "Max data size",
  fsize: "Max file size",
  locks: "Max file locks",
  memlock: "Max locked memory",
  msgqueue: "Max msgqueue size",
  nice: "Max nice priority",
  nofile: "Max open files",
  nproc: "Max processes",
  rss: "Max resident set",
  rtprio: "Max realtime priority",
  rttime: "Max realtime timeout",
  sigpending: "Max pending signals",
  stack: "Max stack size",
};

const UNLIMITED = 2n ** 64n - 1n;

/** The runtime's hard limits (this agent's: runc and the shim inherit them). */
function ownHardLimits(): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of readFileSync("/proc/self/limits", "utf8").split("\n")) {
    for (const [name, row] of Object.entries(LIMIT_ROWS)) {
      if (!line.startsWith(row)) continue;
      const hard = line.slice(row.length).trim().split(/\s+/)[1];
      if (hard) out.set(name, hard === "unlimited" ? UNLIMITED : BigInt(hard));
    }
  }
  return out;
}

/** Docker's -1 (and anything negative) is "unlimited". */
const value = (v: bigint) => (v < 0n ? UNLIMITED : v);

/** config.json holds doubles: 2^64-1 would round past uint64, so "unlimited" is sent as 2^53-1 (no limit in practice). */
const asJson = (v: bigint) => (v >= BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v));

export function ociRlimits(limits: Rlimit[]): { type: string; soft: number; hard: number }[] {
  if (limits.length === 0) return [];
  const own = ownHardLimits();
  return limits.map((l) => {
    if (!(l.name in LIMIT_ROWS)) throw new GuestError("invalid_argument", `invalid ulimit type: ${l.name}`);
    const hard = value(l.hard);
    const max = own.get(l.name) ?? UNLIMITED;
    if (hard > max)
      throw new GuestError(
        "invalid_argument",
        `ulimit ${l.name}: a hard limit of ${hard === UNLIMITED ? "unlimited" : hard} is above the runtime's ${max === UNLIMITED ? "unlimited" : max}; raising a hard limit needs CAP_SYS_RESOURCE, which this host does not grant`,
      );
    return { type: `RLIMIT_${l.name.toUpperCase()}`, soft: asJson(value(l.soft)), hard: asJson(hard) };
  });
}
