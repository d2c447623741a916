/**
 * The spec of an exec the shim starts by joining the container itself (native/shim/
 * exec-direct.c): NUL-terminated key/value pairs, so args and env may hold any byte but
 * NUL. It carries what `runc exec` would apply: the OCI process (user, groups, caps,
 * cwd, env, args, console size) and the container's seccomp rules from its config.json.
 */
import { ALL_CAPS } from "./capabilities.ts";
import type { ociProcess } from "./oci-spec.ts";

type OciProcess = ReturnType<typeof ociProcess>;

interface OciSeccomp {
  defaultAction?: string;
  architectures?: string[];
  syscalls?: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[] }[];
}

/** libseccomp's arch names for the OCI ones. */
const ARCH_NAMES: Record<string, string> = {
  SCMP_ARCH_X86_64: "x86_64",
  SCMP_ARCH_X86: "x86",
  SCMP_ARCH_X32: "x32",
  SCMP_ARCH_AARCH64: "aarch64",
  SCMP_ARCH_ARM: "arm",
};

/** Linux's RLIMIT_* numbers by Docker's names. */
const RLIMIT_NUMBERS: Record<string, number> = {
  cpu: 0,
  fsize: 1,
  data: 2,
  stack: 3,
  core: 4,
  rss: 5,
  nproc: 6,
  nofile: 7,
  memlock: 8,
  as: 9,
  locks: 10,
  sigpending: 11,
  msgqueue: 12,
  nice: 13,
  rtprio: 14,
  rttime: 15,
};

/** config.json's "no limit" (2^53-1, see rlimits.ts) is RLIM_INFINITY for the shim. */
const rlimitText = (v: number) => (v >= Number.MAX_SAFE_INTEGER ? "inf" : String(v));

export function capabilityMask(caps: string[]): bigint {
  let mask = 0n;
  for (const c of caps) {
    const bit = ALL_CAPS.indexOf(c);
    if (bit >= 0) mask |= 1n << BigInt(bit);
  }
  return mask;
}

/**
 * Seccomp rules as "name errno [index mask value]" lines; undefined when the filter uses
 * something the shim does not implement (then the exec goes through runc).
 */
export function seccompRules(seccomp: OciSeccomp | undefined): { arches: string[]; rules: string[] } | undefined {
  if (!seccomp) return { arches: [], rules: [] };
  // The shim's filter allows by default (a user's profile may deny by default).
  if (seccomp.defaultAction !== undefined && seccomp.defaultAction !== "SCMP_ACT_ALLOW") return undefined;
  const arches = (seccomp.architectures ?? []).map((a) => ARCH_NAMES[a]);
  if (arches.some((a) => !a)) return undefined;
  const rules: string[] = [];
  for (const s of seccomp.syscalls ?? []) {
    if (s.action !== "SCMP_ACT_ERRNO" || (s.args?.length ?? 0) > 1) return undefined;
    const arg = s.args?.[0];
    if (arg && arg.op !== "SCMP_CMP_MASKED_EQ") return undefined;
    for (const name of s.names) rules.push(arg ? `${name} ${s.errnoRet ?? 1} ${arg.index} ${arg.value} ${arg.valueTwo ?? 0}` : `${name} ${s.errnoRet ?? 1}`);
  }
  if (rules.length === 0) return undefined; // an empty filter is still a filter: leave that to runc
  return { arches: arches as string[], rules };
}

export function encodeExecSpec(initPid: number, p: OciProcess, seccomp: { arches: string[]; rules: string[] }): Buffer {
  const pairs: [string, string][] = [
    ["pid", String(initPid)],
    ["uid", String(p.user.uid)],
    ["gid", String(p.user.gid)],
    ...(p.user.additionalGids ?? []).map((g): [string, string] => ["group", String(g)]),
    ["cwd", p.cwd],
    ["caps", capabilityMask(p.capabilities.bounding).toString(16)],
    ["nnp", p.noNewPrivileges ? "1" : "0"],
    ...(p.rlimits ?? []).map((r): [string, string] => ["rlimit", `${RLIMIT_NUMBERS[r.type.replace(/^RLIMIT_/, "").toLowerCase()] ?? -1} ${rlimitText(r.soft)} ${rlimitText(r.hard)}`]),
    ...(p.consoleSize
      ? ([
          ["rows", String(p.consoleSize.height)],
          ["cols", String(p.consoleSize.width)],
        ] as [string, string][])
      : []),
    ...p.env.map((e): [string, string] => ["env", e]),
    ...p.args.map((a): [string, string] => ["arg", a]),
    ...seccomp.arches.map((a): [string, string] => ["arch", a]),
    ...seccomp.rules.map((r): [string, string] => ["deny", r]),
  ];
  return Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(""));
}
