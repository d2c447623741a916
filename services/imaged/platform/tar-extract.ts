/**
 * Streams a layer tar (uncompressed) into a snapshot directory as the bytes arrive,
 * the way overlayfs wants a layer: `.wh.NAME` becomes a 0:0 character device,
 * `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory. Keeps owners,
 * modes, times, hard links, symlinks, device nodes and PAX xattrs.
 *
 * Safety: an entry whose path is absolute, climbs with `..`, or goes through a symlink
 * is rejected (the whole layer fails) before anything is written for it. The snapshot
 * directory starts empty, so any symlink on the way was created by this very layer and
 * is tracked in a set, with no lstat per path component.
 */
import {
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  chmodSync,
  utimesSync,
  writeSync,
  constants,
} from "node:fs";
import { lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from "../../../native/fs-ops.ts";
import { ImageError } from "../core/errors.ts";
import { TarEntryParser } from "./tar-entries.ts";
import type { Header } from "./tar-format.ts";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

export interface ExtractResult {
  /** "sha256:<hex>" of the uncompressed tar stream (the layer's diff ID). */
  diffId: string;
  /** Bytes of regular file content written. */
  size: number;
  entries: number;
}

/** Relative, normalized path of an entry; throws for anything that leaves the root. */
export function safeEntryPath(name: string): string {
  if (name.startsWith("/")) throw new ImageError("invalid_argument", `invalid layer: entry ${JSON.stringify(name)} has an absolute path`);
  const parts: string[] = [];
  for (const p of name.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") throw new ImageError("invalid_argument", `invalid layer: entry ${JSON.stringify(name)} escapes the layer root`);
    parts.push(p);
  }
  return parts.join("/");
}

const isEexist = (err: unknown) => (err as { code?: string } | null)?.code === "EEXIST";

/**
 * Creates entries with as few syscalls as possible (this is the hot path of a pull):
 * create-exclusive first and clear only on EEXIST, remember which directories exist,
 * and skip chown/chmod when creation already gave the right owner and mode.
 */
class LayerWriter {
  private symlinks = new Set<string>();
  /** Directories (relative) known to exist as real directories. */
  private known = new Set<string>();
  private dirs: { path: string; mtime: number }[] = [];
  private readonly umask = process.umask();
  private readonly euid = process.geteuid?.() ?? 0;
  size = 0;
  entries = 0;

  constructor(private readonly root: string) {}

  /** Throws when a parent of `rel` is a symlink created by this layer. */
  private checkParents(rel: string): void {
    let i = rel.indexOf("/");
    while (i >= 0) {
      if (this.symlinks.has(rel.slice(0, i))) throw new ImageError("invalid_argument", `invalid layer: entry ${JSON.stringify(rel)} goes through a symlink`);
      i = rel.indexOf("/", i + 1);
    }
  }

  private ensureParent(rel: string): void {
    const slash = rel.lastIndexOf("/");
    if (slash <= 0) return;
    const parent = rel.slice(0, slash);
    if (this.known.has(parent)) return;
    mkdirSync(`${this.root}/${parent}`, { recursive: true, mode: 0o755 });
    for (let i = parent.length; i > 0; i = parent.lastIndexOf("/", i - 1)) this.known.add(parent.slice(0, i));
  }

  /** Removes whatever is at `rel` (a later entry replaces an earlier one). */
  private clear(abs: string, rel: string): void {
    rmSync(abs, { recursive: true, force: true });
    this.symlinks.delete(rel);
    if (this.known.has(rel)) for (const k of this.known) if (k === rel || k.startsWith(`${rel}/`)) this.known.delete(k);
  }

  /** Runs `create`; if the path is taken, clears it and tries once more. */
  private create(abs: string, rel: string, create: () => void): void {
    try {
      create();
    } catch (err) {
      if (!isEexist(err)) throw err;
      this.clear(abs, rel);
      create();
    }
  }

  private owner(abs: string, h: Header): void {
    if (h.uid !== this.euid || h.gid !== 0) lchownSync(abs, h.uid, h.gid);
  }

  /** chmod only when creation could not set the mode (umask, or setuid bits cleared by chown). */
  private needsChmod(h: Header): boolean {
    return (h.mode & this.umask) !== 0 || (h.mode & 0o7000) !== 0;
  }

  private xattrs(abs: string, h: Header): void {
    if (!h.xattrs) return;
    for (const [name, value] of h.xattrs) lsetxattr(abs, name, value);
  }

  /** Creates a non-regular entry, or opens a regular file and returns its fd. */
  begin(h: Header): number | undefined {
    const rel = safeEntryPath(h.name);
    this.entries++;
    if (rel === "") {
      // The root itself ("./"): keep its metadata.
      if (h.type === "5") {
        lchownSync(this.root, h.uid, h.gid);
        chmodSync(this.root, h.mode);
        this.dirs.push({ path: this.root, mtime: h.mtime });
      }
      return undefined;
    }
    this.checkParents(rel);
    const slash = rel.lastIndexOf("/");
    const base = rel.slice(slash + 1);
    const parentRel = slash > 0 ? rel.slice(0, slash) : "";
    const abs = `${this.root}/${rel}`;
    this.ensureParent(rel);

    if (base.startsWith(WHITEOUT)) {
      const parentAbs = parentRel ? `${this.root}/${parentRel}` : this.root;
      if (base === OPAQUE) {
        lsetxattr(parentAbs, "trusted.overlay.opaque", new TextEncoder().encode("y"));
      } else if (!base.startsWith(`${WHITEOUT}${WHITEOUT}`)) {
        const name = base.slice(WHITEOUT.length);
        const target = `${parentAbs}/${name}`;
        const targetRel = parentRel ? `${parentRel}/${name}` : name;
        this.create(target, targetRel, () => mknod(target, S_IFCHR | 0o000, 0, 0));
        this.owner(target, h);
      }
      return undefined;
    }

    switch (h.type) {
      case "0":
      case "7": {
        let fd = 0;
        this.create(abs, rel, () => {
          fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, h.mode & 0o777);
        });
        this.size += h.size;
        return fd;
      }
      case "5": {
        if (!this.known.has(rel)) {
          try {
            mkdirSync(abs, { mode: h.mode & 0o777 });
          } catch (err) {
            if (!isEexist(err)) throw err;
            if (!lstatSync(abs).isDirectory()) {
              this.clear(abs, rel);
              mkdirSync(abs, { mode: h.mode & 0o777 });
            }
          }
          this.known.add(rel);
        }
        this.owner(abs, h);
        // An existing directory keeps its old mode unless we set it.
        chmodSync(abs, h.mode);
        this.xattrs(abs, h);
        this.dirs.push({ path: abs, mtime: h.mtime });
        return undefined;
      }
      case "2": {
        this.create(abs, rel, () => symlinkSync(h.linkname, abs));
        this.symlinks.add(rel);
        this.owner(abs, h);
        this.xattrs(abs, h);
        lutimesSync(abs, h.mtime, h.mtime);
        return undefined;
      }
      case "1": {
        const target = safeEntryPath(h.linkname);
        this.checkParents(target);
        if (target === rel) return undefined;
        this.create(abs, rel, () => linkSync(`${this.root}/${target}`, abs));
        if (this.symlinks.has(target)) this.symlinks.add(rel);
        return undefined;
      }
      case "3":
      case "4":
      case "6": {
        const kind = h.type === "3" ? S_IFCHR : h.type === "4" ? S_IFBLK : S_IFIFO;
        this.create(abs, rel, () => mknod(abs, kind | (h.mode & 0o777), h.devmajor, h.devminor));
        this.owner(abs, h);
        if (this.needsChmod(h)) chmodSync(abs, h.mode);
        this.xattrs(abs, h);
        utimesSync(abs, h.mtime, h.mtime);
        return undefined;
      }
      default:
        // Unknown entry types (GNU sparse, volume labels...) carry nothing we can place.
        return undefined;
    }
  }

  /** Finishes a regular file: owner before mode (chown clears setuid), then times. */
  end(fd: number, h: Header): void {
    const chowned = h.uid !== this.euid || h.gid !== 0;
    if (chowned) fchownSync(fd, h.uid, h.gid);
    if (this.needsChmod(h)) fchmodSync(fd, h.mode);
    if (h.xattrs) this.xattrs(`${this.root}/${safeEntryPath(h.name)}`, h);
    futimesSync(fd, h.mtime, h.mtime);
    closeSync(fd);
  }

  /** Directory times last, deepest first, since creating children changes them. */
  finish(): void {
    for (let i = this.dirs.length - 1; i >= 0; i--) {
      const d = this.dirs[i]!;
      utimesSync(d.path, d.mtime, d.mtime);
    }
  }
}

/**
 * Unpacks an uncompressed tar stream into `root` (an existing, empty directory).
 * Throws on malformed or unsafe input; the caller discards `root` then.
 */
export async function extractTar(stream: AsyncIterable<Uint8Array>, root: string, onBytes?: (n: number) => void): Promise<ExtractResult> {
  const hasher = new Bun.CryptoHasher("sha256");
  const w = new LayerWriter(root);
  const parser = new TarEntryParser("layer");
  let fd: number | undefined; // the regular file being written
  try {
    for await (const chunk of stream) {
      // Past the end marker too: the diff ID covers the trailer's bytes.
      hasher.update(chunk);
      onBytes?.(chunk.length);
      for (const ev of parser.push(chunk)) {
        if (ev.kind === "entry") fd = w.begin(ev.header);
        else if (ev.kind === "data") {
          if (fd === undefined) continue;
          const part = ev.bytes;
          let written = 0;
          while (written < part.length) written += writeSync(fd, part, written, part.length - written);
        } else if (fd !== undefined) {
          w.end(fd, ev.header);
          fd = undefined;
        }
      }
    }
    parser.finish();
    w.finish();
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return { diffId: `sha256:${hasher.digest("hex")}`, size: w.size, entries: w.entries };
}
