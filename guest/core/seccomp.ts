/**
 * A default seccomp filter in the spirit of Docker's: system calls that a container
 * must not make unless it holds the capability that governs them fail with EPERM.
 * Docker's profile is an allowlist; this denies the same dangerous calls explicitly,
 * keyed by the same capabilities (CAP_SYS_ADMIN unlocks mount/unshare/setns, ...).
 * Privileged containers get no filter, as with Docker.
 */

/** Calls no container may make (Docker blocks them whatever the capabilities). */
const ALWAYS_DENIED = [
  "add_key",
  "request_key",
  "keyctl",
  "kexec_load",
  "kexec_file_load",
  "lookup_dcookie",
  "nfsservctl",
  "uselib",
  "ustat",
  "sysfs",
  "_sysctl",
  "vm86",
  "vm86old",
  "create_module",
  "get_kernel_syms",
  "query_module",
  "userfaultfd",
  "open_by_handle_at",
];

/** Calls allowed only with a capability. */
const DENIED_WITHOUT: Record<string, string[]> = {
  CAP_SYS_ADMIN: [
    "mount",
    "umount",
    "umount2",
    "unshare",
    "setns",
    "pivot_root",
    "swapon",
    "swapoff",
    "quotactl",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "fanotify_init",
    "lookup_dcookie",
    "clone3",
  ],
  CAP_SYS_MODULE: ["init_module", "finit_module", "delete_module"],
  CAP_SYS_BOOT: ["reboot"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_adjtime", "adjtimex"],
  CAP_SYS_PACCT: ["acct"],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_NICE: ["mbind", "set_mempolicy", "move_pages"],
  CAP_SYS_PTRACE: ["process_vm_readv", "process_vm_writev", "kcmp"],
};

/** CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
const NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];
const EPERM = 1;
const ENOSYS = 38;

export function defaultSeccomp(caps: string[]) {
  const held = new Set(caps);
  const denied = new Set(ALWAYS_DENIED);
  for (const [cap, calls] of Object.entries(DENIED_WITHOUT)) if (!held.has(cap)) for (const c of calls) denied.add(c);
  // clone3 gets ENOSYS, not EPERM, so libcs fall back to clone (whose flags we do not filter).
  const clone3 = denied.delete("clone3");
  // Without CAP_SYS_ADMIN, clone(2) may not create namespaces (one rule per flag bit:
  // seccomp compares masked values for equality only).
  const cloneRules = held.has("CAP_SYS_ADMIN")
    ? []
    : NAMESPACE_FLAGS.map((flag) => ({ names: ["clone"], action: "SCMP_ACT_ERRNO", errnoRet: EPERM, args: [{ index: 0, value: flag, valueTwo: flag, op: "SCMP_CMP_MASKED_EQ" }] }));
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    syscalls: [{ names: [...denied].sort(), action: "SCMP_ACT_ERRNO", errnoRet: EPERM }, ...(clone3 ? [{ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS }] : []), ...cloneRules],
  };
}

interface ProfileRule {
  name?: string;
  names?: string[];
  action: string;
  errnoRet?: number;
  args?: unknown[] | null;
  includes?: { caps?: string[]; arches?: string[] };
  excludes?: { caps?: string[]; arches?: string[] };
}

interface DockerProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls?: ProfileRule[];
}

const NATIVE_ARCH = process.arch === "arm64" ? "SCMP_ARCH_AARCH64" : "SCMP_ARCH_X86_64";
/** Go's name for this architecture, as profiles' includes/excludes use it. */
const GO_ARCH = process.arch === "arm64" ? "arm64" : "amd64";

/**
 * A Docker seccomp profile (`--security-opt seccomp=<file>`, whose content the CLI
 * sends) as runc's LinuxSeccomp, as dockerd's setupSeccomp: the native architecture's
 * archMap entry, rules kept or dropped by their includes/excludes of capabilities.
 */
export function seccompFromProfile(json: string, caps: string[]) {
  const p = JSON.parse(json) as DockerProfile;
  const held = new Set(caps);
  const entry = p.archMap?.find((a) => a.architecture === NATIVE_ARCH);
  const architectures = p.architectures?.length ? p.architectures : entry ? [entry.architecture, ...(entry.subArchitectures ?? [])] : [];
  const applies = (r: ProfileRule) =>
    (r.includes?.caps ?? []).every((c) => held.has(c)) &&
    !(r.excludes?.caps ?? []).some((c) => held.has(c)) &&
    (!r.includes?.arches?.length || r.includes.arches.includes(GO_ARCH)) &&
    !(r.excludes?.arches ?? []).includes(GO_ARCH);
  return {
    defaultAction: p.defaultAction,
    ...(p.defaultErrnoRet !== undefined ? { defaultErrnoRet: p.defaultErrnoRet } : {}),
    architectures,
    syscalls: (p.syscalls ?? []).filter(applies).map((r) => ({
      names: r.names ?? (r.name ? [r.name] : []),
      action: r.action,
      ...(r.errnoRet !== undefined ? { errnoRet: r.errnoRet } : {}),
      ...(r.args?.length ? { args: r.args } : {}),
    })),
  };
}
