/**
 * Layer images: one read-only squashfs file per layer, built by `sqfstar` from the
 * layer tar as it streams in (through overlay-tar-filter.ts), and loop-mounted to
 * serve as an overlayfs lower dir. No file of the layer is ever created on disk.
 *
 * Why squashfs, uncompressed (-noI -noD -noF -noX): Debian's erofs-utils 1.5 cannot
 * read a tar stream (mkfs.erofs needs an unpacked tree, the very cost this avoids);
 * sqfstar builds from stdin. Uncompressed, it builds at pipe speed, mounts in ~0.15 s,
 * reads cold faster than lz4 (no decompression), and is about the size of the
 * unpacked tree; the compressed blob is kept beside it anyway for save/push.
 *
 * Mount and umount run as spawned tools: no namespace or mount syscall in Bun.
 */
import { existsSync, readFileSync } from "node:fs";
import { ImageError } from "../core/errors.ts";

const SQFSTAR_ARGS = ["-quiet", "-no-progress", "-exit-on-error", "-noI", "-noD", "-noF", "-noX", "-root-mode", "755", "-root-uid", "0", "-root-gid", "0", "-root-time", "0", "-mem", "256M"];

export interface LayerImageSupport {
  ok: boolean;
  /** Why layers are unpacked instead, when !ok. */
  reason: string;
}

let probed: LayerImageSupport | undefined;

/** squashfs in the kernel, loop devices, and sqfstar on the PATH; ARCBOX_LAYER_IMAGES=0 turns it off. */
export function layerImageSupport(): LayerImageSupport {
  if (probed) return probed;
  const fsList = (() => {
    try {
      return readFileSync(process.env.ARCBOX_PROC_FILESYSTEMS ?? "/proc/filesystems", "utf8");
    } catch {
      return "";
    }
  })();
  if (process.env.ARCBOX_LAYER_IMAGES === "0") probed = { ok: false, reason: "layer images disabled (ARCBOX_LAYER_IMAGES=0)" };
  else if (!/\tsquashfs$/m.test(fsList)) probed = { ok: false, reason: "kernel has no squashfs" };
  else if (!existsSync("/dev/loop-control")) probed = { ok: false, reason: "no loop devices (/dev/loop-control)" };
  else if (!Bun.which("sqfstar")) probed = { ok: false, reason: "sqfstar not installed (squashfs-tools)" };
  else probed = { ok: true, reason: "" };
  return probed;
}

/**
 * Runs sqfstar writing `out` (which must not exist) from `tar`. Rejects with the
 * tool's message when it fails; the caller removes `out`.
 */
export async function buildSquashfs(tar: AsyncIterable<Uint8Array>, out: string): Promise<void> {
  const proc = Bun.spawn(["sqfstar", ...SQFSTAR_ARGS, out], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
  const stderr = new Response(proc.stderr).text();
  // An error of the input (bad or unsafe tar) wins; a broken pipe means sqfstar
  // stopped, and its own message says why.
  // Flags, not the errors themselves: an aborted stream may throw `undefined`.
  let inputFailed = false;
  let inputErr: unknown;
  let pipeErr: unknown;
  try {
    for await (const chunk of tar) {
      try {
        proc.stdin.write(chunk);
        // Backpressure: do not run ahead of sqfstar by more than the pipe buffer.
        await proc.stdin.flush();
      } catch (err) {
        pipeErr = err ?? new Error("broken pipe");
        break;
      }
    }
    if (!pipeErr) await proc.stdin.end();
  } catch (err) {
    inputFailed = true;
    inputErr = err ?? new ImageError("unavailable", "layer stream aborted");
  }
  if (inputFailed || pipeErr !== undefined) proc.kill();
  const code = await proc.exited;
  if (inputFailed) throw inputErr;
  if (code === 0 && !pipeErr) return;
  const why = (await stderr).trim().split("\n").slice(-2).join("; ");
  // A full disk is not the layer's fault: no "invalid layer" (which would drop the blob).
  if (/no space left/i.test(why)) throw new ImageError("internal", `no space left on device while writing a layer image: ${why}`);
  throw new ImageError("invalid_argument", `invalid layer: sqfstar failed: ${why}`);
}

/**
 * Runs mksquashfs writing `out` (which must not exist) from an unpacked layer
 * directory: for stores from before layer images. The directory already holds overlay
 * whiteouts (char 0:0) and opaque xattrs; mksquashfs keeps devices, hard links, owners,
 * modes, times and trusted.* xattrs (imaged runs as root) as they are.
 */
export async function buildSquashfsFromDir(dir: string, out: string): Promise<void> {
  const r = await run(["mksquashfs", dir, out, "-quiet", "-no-progress", "-noappend", "-exit-on-error", "-noI", "-noD", "-noF", "-noX", "-mem", "256M"]);
  if (r.code === 0) return;
  if (/no space left/i.test(r.stderr)) throw new ImageError("internal", `no space left on device while converting a layer: ${r.stderr}`);
  throw new ImageError("internal", `cannot convert layer directory ${dir}: ${r.stderr.split("\n").slice(-2).join("; ")}`);
}

async function run(argv: string[]): Promise<{ code: number; stderr: string }> {
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  return { code, stderr: stderr.trim() };
}

/** Read-only loop mount; the loop device is released by the kernel at umount (autoclear). */
export async function mountSquashfs(image: string, target: string): Promise<void> {
  const r = await run(["mount", "-t", "squashfs", "-o", "ro,loop", image, target]);
  if (r.code === 0) return;
  if (/loop device/i.test(r.stderr)) throw new ImageError("unavailable", `cannot mount layer image: no free loop device (${r.stderr})`);
  throw new ImageError("internal", `cannot mount layer image ${image}: ${r.stderr}`);
}

export async function unmount(target: string): Promise<void> {
  const r = await run(["umount", target]);
  if (r.code === 0 || /not mounted/.test(r.stderr)) return;
  // Busy (a process still has a file open): detach now, the kernel frees it when released.
  const lazy = await run(["umount", "-l", target]);
  if (lazy.code !== 0 && !/not mounted/.test(lazy.stderr)) throw new ImageError("internal", `cannot unmount layer ${target}: ${lazy.stderr}`);
}

/** Mount points under `dir` (one level) that the kernel has mounted now, from /proc/self/mounts. */
export function mountedUnder(dir: string): Set<string> {
  const out = new Set<string>();
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const target = line.split(" ")[1];
    if (!target) continue;
    const path = target.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path.startsWith(prefix) && !path.slice(prefix.length).includes("/")) out.add(path);
  }
  return out;
}
