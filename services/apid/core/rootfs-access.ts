/**
 * Host access to a container's root filesystem for docker cp, export and commit:
 * the live root of a running container (/proc/<pid>/root, volumes included), or a
 * temporary overlay mount of a stopped one (read-only unless writing). Mounting
 * happens in a spawned `mount`, never in the Bun process.
 */
import { mkdirSync, mkdtempSync, rmdirSync } from "node:fs";
import { join } from "node:path";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";

async function run(argv: string[]): Promise<void> {
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new ContainerError("internal", `${argv[0]} failed: ${err.trim()}`);
}

export interface RootfsHandle {
  root: string;
  release(): Promise<void>;
}

export async function acquireRootfs(rec: ContainerRecord, tmpBase: string, writable: boolean): Promise<RootfsHandle> {
  if ((rec.state.status === "running" || rec.state.status === "paused") && rec.state.pid > 0) return { root: `/proc/${rec.state.pid}/root`, release: async () => {} };
  if (!rec.rootfs.upperDir) throw new ContainerError("conflict", `container ${rec.id} has no root filesystem`);
  mkdirSync(tmpBase, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(join(tmpBase, "rootfs-"));
  // Without upperdir the overlay is read-only, and safe next to other mounts of the same layers.
  const opts = writable
    ? `lowerdir=${rec.rootfs.lowerDirs.join(":")},upperdir=${rec.rootfs.upperDir},workdir=${rec.rootfs.workDir}`
    : `lowerdir=${[rec.rootfs.upperDir, ...rec.rootfs.lowerDirs].join(":")}`;
  try {
    await run(["mount", "-t", "overlay", "overlay", "-o", opts, dir]);
  } catch (err) {
    rmdirSync(dir);
    throw err;
  }
  let released = false;
  return {
    root: dir,
    release: async () => {
      if (released) return;
      released = true;
      await run(["umount", dir]).catch(() => run(["umount", "-l", dir]));
      // rmdir, never a recursive delete: if the unmount failed, the rootfs stays untouched.
      try {
        rmdirSync(dir);
      } catch {}
    },
  };
}
