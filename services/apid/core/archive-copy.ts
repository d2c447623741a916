/**
 * docker cp into a container: the uploaded tar is unpacked by GNU tar into a private
 * staging directory (tar refuses `..` members and defers dangerous links), then copied
 * entry by entry into the container root, each destination resolved inside the root, so
 * a symlink in the container or in the archive can never redirect a write to the host.
 */
import { chmodSync, copyFileSync, lchownSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, unlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { ContainerError } from "./container-error.ts";
import { resolveInRoot } from "./safe-path.ts";

function existing(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** Copies `staging`'s tree into `destDir` (a container path) under `root`. */
export function copyIntoRoot(staging: string, root: string, destDir: string, opts: { noOverwriteDirNonDir: boolean; keepOwner: boolean }): void {
  const walk = (rel: string) => {
    for (const name of readdirSync(join(staging, rel))) {
      const src = join(staging, rel, name);
      const st = lstatSync(src);
      const containerPath = `${destDir}/${rel ? rel + "/" : ""}${name}`;
      // The parent is resolved (symlinks followed inside the root); the entry itself is not.
      const dest = resolveInRoot(root, containerPath, false);
      if (!dest.startsWith(root)) throw new ContainerError("invalid_argument", `refusing to write outside the container: ${containerPath}`);
      const cur = existing(dest);
      if (st.isDirectory()) {
        if (cur && !cur.isDirectory()) {
          if (opts.noOverwriteDirNonDir) throw new ContainerError("invalid_argument", `cannot overwrite non-directory "${containerPath}" with directory`);
          rmSync(dest, { force: true });
        }
        if (!cur || !cur.isDirectory()) mkdirSync(dest);
        walk(rel ? `${rel}/${name}` : name);
      } else {
        if (cur?.isDirectory()) {
          if (opts.noOverwriteDirNonDir) throw new ContainerError("invalid_argument", `cannot overwrite directory "${containerPath}" with non-directory`);
          rmSync(dest, { recursive: true, force: true });
        } else if (cur) unlinkSync(dest);
        if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dest);
        else if (st.isFile()) copyFileSync(src, dest);
        else continue; // devices, fifos and sockets are not copied into containers
      }
      if (opts.keepOwner) lchownSync(dest, st.uid, st.gid);
      if (!st.isSymbolicLink()) {
        chmodSync(dest, st.mode & 0o7777);
        utimesSync(dest, st.atime, st.mtime);
      }
    }
  };
  walk("");
}

/** Go's os.FileMode bits, which the docker CLI expects in the path-stat header (added, not OR-ed: bit 31 overflows JS int32). */
export function goFileMode(mode: number): number {
  const type = mode & 0o170000;
  let m = mode & 0o777;
  if (type === 0o040000) m += 2 ** 31;
  else if (type === 0o120000) m += 2 ** 27;
  else if (type === 0o010000) m += 2 ** 25;
  else if (type === 0o140000) m += 2 ** 24;
  else if (type === 0o020000) m += 2 ** 26 + 2 ** 21;
  else if (type === 0o060000) m += 2 ** 26;
  if (mode & 0o4000) m += 2 ** 23;
  if (mode & 0o2000) m += 2 ** 22;
  if (mode & 0o1000) m += 2 ** 20;
  return m;
}
