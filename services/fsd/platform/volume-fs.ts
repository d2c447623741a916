/**
 * Filesystem side of volumes: directories, local-driver mounts (tmpfs, bind, any
 * `mount -t`), sizes, and copying an image's content into a new volume. Mounts are
 * done by spawned tools, never by syscalls in the Bun process.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { copyUpArgv } from "../../../lib/volume-copy-up.ts";
import { VolumeError } from "../core/volume-error.ts";

async function run(argv: string[]): Promise<{ code: number; stderr: string; stdout: string }> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

export function volumeDir(root: string, name: string): string {
  return join(root, name);
}
export function dataDir(root: string, name: string): string {
  return join(root, name, "_data");
}

export function makeVolumeDirs(root: string, name: string): void {
  mkdirSync(dataDir(root, name), { recursive: true, mode: 0o755 });
}

export async function removeVolumeDirs(root: string, name: string): Promise<void> {
  const data = dataDir(root, name);
  if (isMountpoint(data)) await unmount(data);
  // Never recurse into a still-mounted bind/device: that would delete the user's files.
  if (isMountpoint(data)) throw new VolumeError("conflict", `remove ${name}: the volume is still mounted at ${data}`);
  rmSync(volumeDir(root, name), { recursive: true, force: true });
}

export function isEmptyDir(path: string): boolean {
  try {
    return readdirSync(path).length === 0;
  } catch {
    return true;
  }
}

/** /proc/self/mountinfo lists the host namespace's mounts: is `path` one of them? */
export function isMountpoint(path: string): boolean {
  const info = readFileSync("/proc/self/mountinfo", "utf8");
  return info.split("\n").some((l) => l.split(" ")[4] === path);
}

/** Mounts a local-driver volume with options (type/o/device) on its _data dir. */
export async function mountWithOptions(target: string, opts: Record<string, string>): Promise<void> {
  if (isMountpoint(target)) return;
  const type = opts.type || "none";
  const device = opts.device || type;
  const argv = ["mount", "-t", type];
  if (opts.o) argv.push("-o", opts.o);
  argv.push(device, target);
  const r = await run(argv);
  if (r.code !== 0) throw new VolumeError("internal", `error while mounting volume '${target}': failed to mount local volume: ${r.stderr.trim()}`);
}

export async function unmount(target: string): Promise<void> {
  await run(["umount", "-l", target]);
}

export async function diskUsage(path: string): Promise<number> {
  const r = await run(["du", "-sb", path]);
  return r.code === 0 ? Number(r.stdout.split(/\s/)[0]) : -1;
}

/**
 * Copies the image's content at `target` into an empty volume, with ownership and
 * modes, resolving `target` inside the image's root (lib/volume-copy-up.ts).
 */
export async function populateFromImage(lowerDirs: string[], target: string, dest: string): Promise<void> {
  if (target.split("/").includes("..")) throw new VolumeError("invalid_argument", `invalid mount target ${target}`);
  if (lowerDirs.length === 0) return;
  const scratch = mkdtempSync(join(dest, "..", ".copy-up-"));
  try {
    const argv = copyUpArgv({ unshare: ["unshare", "-m", "--propagation", "private"], shell: ["sh"], busybox: "/bin/busybox", cp: "cp", mount: "mount", lowerDirs, target, dest, scratch });
    const r = await run(argv);
    if (r.code !== 0) throw new VolumeError("internal", `copying image content into the volume failed: ${r.stderr.trim()}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
