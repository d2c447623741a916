/**
 * Turns an overlayfs upper directory back into a layer tar (docker commit): 0:0
 * character devices become `.wh.NAME` whiteouts, `trusted.overlay.opaque=y`
 * directories get a `.wh..wh..opq` marker, hard links are written once and linked,
 * and owners, modes, times, devices and xattrs (except overlay's own) are kept.
 */
import { lstatSync, readdirSync, readlinkSync, type Stats } from "node:fs";
import { lgetxattr, llistxattr } from "../../../native/fs-ops.ts";
import { tarEntryHeader, tarPadding, TAR_END, type TarEntry } from "./tar-stream.ts";

const devMajor = (rdev: number) => ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
const devMinor = (rdev: number) => (rdev & 0xff) | ((rdev >> 12) & ~0xff);

function xattrsOf(path: string): Map<string, Uint8Array> | undefined {
  const names = llistxattr(path).filter((n) => !n.startsWith("trusted.overlay."));
  if (names.length === 0) return undefined;
  const out = new Map<string, Uint8Array>();
  for (const n of names) {
    const v = lgetxattr(path, n);
    if (v) out.set(n, v);
  }
  return out;
}

function base(name: string, st: Stats): Omit<TarEntry, "type" | "size"> {
  return { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
}

export async function* diffTar(upper: string): AsyncGenerator<Uint8Array> {
  const links = new Map<string, string>();
  async function* walk(rel: string): AsyncGenerator<Uint8Array> {
    const dir = rel ? `${upper}/${rel}` : upper;
    for (const name of readdirSync(dir).sort()) {
      const path = `${dir}/${name}`;
      const entryName = rel ? `${rel}/${name}` : name;
      const st = lstatSync(path);
      if (st.isCharacterDevice() && st.rdev === 0) {
        const wh = rel ? `${rel}/.wh.${name}` : `.wh.${name}`;
        yield tarEntryHeader({ ...base(wh, st), type: "0", size: 0 });
        continue;
      }
      const xattrs = xattrsOf(path);
      if (st.isDirectory()) {
        yield tarEntryHeader({ ...base(entryName, st), type: "5", size: 0, xattrs });
        const opaque = lgetxattr(path, "trusted.overlay.opaque");
        if (opaque && new TextDecoder().decode(opaque) === "y") yield tarEntryHeader({ ...base(`${entryName}/.wh..wh..opq`, st), type: "0", size: 0 });
        yield* walk(entryName);
      } else if (st.isSymbolicLink()) {
        yield tarEntryHeader({ ...base(entryName, st), type: "2", size: 0, linkname: readlinkSync(path), xattrs });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first) {
          yield tarEntryHeader({ ...base(entryName, st), type: "1", size: 0, linkname: first });
          continue;
        }
        if (st.nlink > 1) links.set(key, entryName);
        yield tarEntryHeader({ ...base(entryName, st), type: "0", size: st.size, xattrs });
        let written = 0;
        for await (const chunk of Bun.file(path).stream()) {
          // A file that grew while we read keeps its recorded size.
          const part = chunk.subarray(0, Math.max(0, st.size - written));
          written += part.length;
          if (part.length) yield part;
        }
        if (written < st.size) yield new Uint8Array(st.size - written);
        yield tarPadding(st.size);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        yield tarEntryHeader({ ...base(entryName, st), type: st.isCharacterDevice() ? "3" : "4", size: 0, devmajor: devMajor(st.rdev), devminor: devMinor(st.rdev), xattrs });
      } else if (st.isFIFO()) {
        yield tarEntryHeader({ ...base(entryName, st), type: "6", size: 0, xattrs });
      }
      // Sockets are not carried in layers.
    }
  }
  yield* walk("");
  yield TAR_END;
}
