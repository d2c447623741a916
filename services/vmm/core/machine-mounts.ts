/**
 * A machine's shared host directories (VirtioFS): their validated form, the tags that
 * name them to the guest, and the parser of the `HOSTDIR:GUESTDIR[:ro][,cache=MODE]`
 * notation the CLI and the API share. fsd serves each one (ShareService); the guest
 * mounts it at its guest directory during boot (native/init/machine-setup.c).
 */
import { statSync, type Stats } from "node:fs";
import { isAbsolute, normalize } from "node:path";
import { z } from "zod";
import { mountsArg } from "../../../guest/boot/mounts-arg.ts";
import { MachineError } from "./machine-error.ts";

export const CACHE_MODES = ["auto", "always", "never"] as const;
export type CacheMode = (typeof CACHE_MODES)[number];

/** Shares per machine: their list travels on the kernel command line (2 KiB on x86). */
export const MAX_MOUNTS = 16;
/** Room for `arcbox.mounts=` on that line, next to the rest of it (~200 bytes). */
const MAX_MOUNTS_ARG = 1536;

/**
 * Guest paths a share may not cover: the kernel's filesystems, the guest tools and the
 * agent's own state (mounting over them would break the machine).
 */
const RESERVED_GUEST_DIRS = ["/proc", "/sys", "/dev", "/opt/arcbox", "/var/lib/arcbox"];

export const mountSchema = z.object({
  /** virtio-fs tag (fsd: [A-Za-z0-9][A-Za-z0-9_.-]{0,35}), unique in the machine. */
  tag: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,35}$/),
  hostDir: z.string(),
  guestDir: z.string(),
  readOnly: z.boolean(),
  cacheMode: z.enum(CACHE_MODES),
});
export type MachineMount = z.infer<typeof mountSchema>;

/** What a caller asks for; vmm assigns the tag. */
export interface MountRequest {
  hostDir: string;
  guestDir: string;
  readOnly?: boolean;
  cacheMode?: string;
}

const bad = (msg: string): never => {
  throw new MachineError("invalid_argument", msg);
};

/** Checks a guest directory: absolute, normalised, not `/`, not over the guest's own parts. */
export function checkGuestDir(guestDir: string): string {
  if (!guestDir) bad("the guest directory of a mount is empty");
  if (!isAbsolute(guestDir)) bad(`guest directory '${guestDir}' is not absolute`);
  if (guestDir.split("/").includes("..")) bad(`guest directory '${guestDir}' contains '..'`);
  if (/[\0\n]/.test(guestDir)) bad("guest directory contains a NUL or newline");
  const dir = normalize(guestDir).replace(/(.)\/+$/, "$1");
  if (dir === "/") bad("a share cannot be mounted over the guest's root directory '/'");
  const reserved = RESERVED_GUEST_DIRS.find((r) => dir === r || dir.startsWith(`${r}/`));
  if (reserved) bad(`guest directory '${dir}' is inside ${reserved}, which the machine needs for itself`);
  return dir;
}

/** Checks a host directory: absolute and an existing directory (vmm and the CLI see the same host). */
export function checkHostDir(hostDir: string): string {
  if (!hostDir) bad("the host directory of a mount is empty");
  if (!isAbsolute(hostDir)) bad(`host directory '${hostDir}' is not absolute`);
  if (/[\0\n]/.test(hostDir)) bad("host directory contains a NUL or newline");
  const dir = normalize(hostDir).replace(/(.)\/+$/, "$1");
  let st: Stats;
  try {
    st = statSync(dir);
  } catch {
    return bad(`host directory '${dir}' does not exist`);
  }
  if (!st.isDirectory()) bad(`host path '${dir}' is not a directory`);
  return dir;
}

function checkCacheMode(mode: string | undefined): CacheMode {
  if (!mode) return "auto";
  if (!(CACHE_MODES as readonly string[]).includes(mode)) bad(`unknown cache mode '${mode}' (auto, always or never)`);
  return mode as CacheMode;
}

/**
 * Validates `requests` as additions to `existing` (whose tags and guest dirs are taken)
 * and gives them tags (`s<N>`, the lowest free N). Throws before anything changes.
 */
export function addMounts(existing: readonly MachineMount[], requests: readonly MountRequest[]): MachineMount[] {
  const out = [...existing];
  for (const r of requests) {
    const guestDir = checkGuestDir(r.guestDir);
    const hostDir = checkHostDir(r.hostDir);
    if (out.some((m) => m.guestDir === guestDir)) bad(`guest directory '${guestDir}' is already a mount of this machine`);
    let n = 0;
    while (out.some((m) => m.tag === `s${n}`)) n++;
    out.push({ tag: `s${n}`, hostDir, guestDir, readOnly: Boolean(r.readOnly), cacheMode: checkCacheMode(r.cacheMode) });
  }
  if (out.length > MAX_MOUNTS) bad(`a machine has at most ${MAX_MOUNTS} mounts`);
  if ((mountsArg(out)?.length ?? 0) > MAX_MOUNTS_ARG) bad("the machine's guest directories are too long together to pass to its kernel: use fewer or shorter ones");
  return out;
}

/**
 * Parses `HOSTDIR:GUESTDIR[:OPTIONS]` with OPTIONS a comma list of `ro`, `rw` and
 * `cache=auto|always|never` (e.g. `/src:/src:ro,cache=never`). Paths are taken as given;
 * the CLI resolves a relative HOSTDIR first. A path containing ':' cannot be written.
 */
export function parseMountSpec(spec: string): MountRequest {
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) bad(`invalid mount '${spec}': expected HOSTDIR:GUESTDIR[:ro][,cache=auto|always|never]`);
  const r: MountRequest = { hostDir: parts[0]!, guestDir: parts[1]! };
  for (const opt of parts[2]?.split(",") ?? []) {
    if (opt === "ro") r.readOnly = true;
    else if (opt === "rw") r.readOnly = false;
    else if (opt.startsWith("cache=")) r.cacheMode = checkCacheMode(opt.slice(6));
    else bad(`invalid mount option '${opt}' in '${spec}' (ro, rw, cache=auto|always|never)`);
  }
  return r;
}

/** The notation back: `HOSTDIR:GUESTDIR[:ro][,cache=MODE]` (cache omitted when auto). */
export function formatMount(m: { hostDir: string; guestDir: string; readOnly: boolean; cacheMode: string }): string {
  const opts = [...(m.readOnly ? ["ro"] : []), ...(m.cacheMode && m.cacheMode !== "auto" ? [`cache=${m.cacheMode}`] : [])];
  return `${m.hostDir}:${m.guestDir}${opts.length ? `:${opts.join(",")}` : ""}`;
}
