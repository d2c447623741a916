/**
 * Rewrites a layer tar, as it streams, into the tar `sqfstar` should turn into an
 * overlayfs lower layer: `.wh.NAME` becomes a 0:0 character device NAME, and
 * `.wh..wh..opq` becomes `trusted.overlay.opaque=y` on its directory (a PAX xattr,
 * which sqfstar stores). Every header is re-encoded from its parsed form, so names are
 * normalized and owners are numeric.
 *
 * The same refusals as unpacking (tar-extract.ts): absolute paths, `..`, entries or
 * hard links through a symlink of this layer fail the whole layer.
 *
 * sqfstar keeps the first of two entries with one path where tar keeps the last, and
 * cannot add an xattr to a directory it has already read. Such layers (a path twice,
 * an opaque marker not right after its directory, an opaque root) raise
 * NeedsUnpack, and the caller unpacks that layer into a directory instead.
 */
import { ImageError } from "../core/errors.ts";
import { safeEntryPath } from "./tar-extract.ts";
import { TarEntryParser } from "./tar-entries.ts";
import type { Header } from "./tar-format.ts";
import { TAR_END, tarEntryHeader, tarPadding, type TarEntry } from "./tar-stream.ts";

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";
const OPAQUE_XATTR = "trusted.overlay.opaque";

/** This layer cannot be expressed as a sqfstar stream; unpack it instead. */
export class NeedsUnpack extends Error {}

export interface FilterResult {
  diffId: string;
  /** Bytes of regular file content. */
  size: number;
  entries: number;
}

/** Collects output bytes by copying into one growing buffer (no per-entry arrays). */
class OutBuffer {
  private buf = new Uint8Array(1 << 20);
  length = 0;
  push(b: Uint8Array): void {
    if (this.length + b.length > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + b.length));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  /** The bytes so far, as a fresh array (the consumer may hold it). */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.length);
    this.length = 0;
    return out;
  }
}

/**
 * Yields the rewritten tar; `result` resolves once the input ended (diff ID of the
 * input bytes as they came in). Throws ImageError for unsafe or malformed input.
 */
export function overlayTarFilter(input: AsyncIterable<Uint8Array>): { output: AsyncGenerator<Uint8Array>; result: Promise<FilterResult> } {
  let resolve!: (r: FilterResult) => void;
  let reject!: (e: unknown) => void;
  const result = new Promise<FilterResult>((res, rej) => ((resolve = res), (reject = rej)));
  result.catch(() => {});
  const output = (async function* () {
    try {
      yield* run();
    } catch (err) {
      reject(err);
      throw err;
    }
  })();

  async function* run(): AsyncGenerator<Uint8Array> {
    const hasher = new Bun.CryptoHasher("sha256");
    const parser = new TarEntryParser("layer");
    let passData = false; // the current entry's data goes to the output
    let size = 0;
    let entries = 0;
    const symlinks = new Set<string>();
    /** Paths already given to sqfstar, and directories it made up as parents. */
    const seen = new Set<string>();
    const implied = new Set<string>();
    /** A directory held back one entry, in case its opaque marker follows. */
    let heldDir: { rel: string; entry: TarEntry } | undefined;
    const out = new OutBuffer();

    const checkParents = (rel: string) => {
      for (let i = rel.indexOf("/"); i >= 0; i = rel.indexOf("/", i + 1)) {
        if (symlinks.has(rel.slice(0, i))) throw new ImageError("invalid_argument", `invalid layer: entry ${JSON.stringify(rel)} goes through a symlink`);
      }
    };
    const claim = (rel: string, isDir: boolean) => {
      if (seen.has(rel)) throw new NeedsUnpack(`${rel} appears twice`);
      if (implied.has(rel) && isDir) throw new NeedsUnpack(`${rel} comes after its children`);
      if (implied.has(rel)) throw new NeedsUnpack(`${rel} replaces a directory`);
      seen.add(rel);
      for (let i = rel.lastIndexOf("/"); i > 0; i = rel.lastIndexOf("/", i - 1)) {
        const p = rel.slice(0, i);
        if (seen.has(p) || implied.has(p)) break;
        implied.add(p);
      }
    };
    const flushHeld = () => {
      if (heldDir) out.push(tarEntryHeader(heldDir.entry));
      heldDir = undefined;
    };

    /** Handles one entry header; returns true when its data should be copied. */
    const onEntry = (h: Header): boolean => {
      const rel = safeEntryPath(h.name);
      entries++;
      if (rel === "") return false; // the root: sqfstar is given its attributes on the command line
      checkParents(rel);
      const slash = rel.lastIndexOf("/");
      const base = rel.slice(slash + 1);
      const parentRel = slash > 0 ? rel.slice(0, slash) : "";
      if (base.startsWith(WHITEOUT)) {
        if (base === OPAQUE) {
          if (parentRel === "") throw new NeedsUnpack("opaque root");
          if (heldDir?.rel === parentRel) {
            (heldDir.entry.xattrs ??= new Map()).set(OPAQUE_XATTR, new TextEncoder().encode("y"));
            return false;
          }
          if (seen.has(parentRel) || implied.has(parentRel)) throw new NeedsUnpack(`opaque marker of ${parentRel} not right after it`);
          flushHeld();
          claim(parentRel, true);
          out.push(tarEntryHeader({ name: parentRel, type: "5", size: 0, mode: 0o755, uid: 0, gid: 0, mtime: h.mtime, xattrs: new Map([[OPAQUE_XATTR, new TextEncoder().encode("y")]]) }));
          return false;
        }
        if (base.startsWith(`${WHITEOUT}${WHITEOUT}`)) return false; // other AUFS metadata
        const target = parentRel ? `${parentRel}/${base.slice(WHITEOUT.length)}` : base.slice(WHITEOUT.length);
        flushHeld();
        claim(target, false);
        out.push(tarEntryHeader({ name: target, type: "3", size: 0, mode: 0, uid: h.uid, gid: h.gid, mtime: h.mtime, devmajor: 0, devminor: 0 }));
        return false;
      }
      const common = { name: rel, size: 0, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime, xattrs: h.xattrs };
      switch (h.type) {
        case "0":
        case "7":
          flushHeld();
          claim(rel, false);
          out.push(tarEntryHeader({ ...common, type: "0", size: h.size }));
          size += h.size;
          return true;
        case "5":
          flushHeld();
          claim(rel, true);
          heldDir = { rel, entry: { ...common, type: "5" } };
          return false;
        case "2":
          flushHeld();
          claim(rel, false);
          symlinks.add(rel);
          out.push(tarEntryHeader({ ...common, type: "2", linkname: h.linkname }));
          return false;
        case "1": {
          const target = safeEntryPath(h.linkname);
          checkParents(target);
          if (target === rel) return false;
          if (!seen.has(target)) throw new ImageError("invalid_argument", `invalid layer: hard link ${JSON.stringify(rel)} points to ${JSON.stringify(h.linkname)}, which is not in the layer`);
          flushHeld();
          claim(rel, false);
          if (symlinks.has(target)) symlinks.add(rel);
          out.push(tarEntryHeader({ ...common, type: "1", linkname: target }));
          return false;
        }
        case "3":
        case "4":
        case "6":
          flushHeld();
          claim(rel, false);
          out.push(tarEntryHeader({ ...common, type: h.type, devmajor: h.devmajor, devminor: h.devminor }));
          return false;
        default:
          return false; // GNU sparse, volume labels...: nothing to place, as when unpacking
      }
    };

    for await (const chunk of input) {
      hasher.update(chunk);
      for (const ev of parser.push(chunk)) {
        if (ev.kind === "entry") passData = onEntry(ev.header);
        else if (ev.kind === "data") {
          if (passData) out.push(ev.bytes);
        } else if (passData) {
          out.push(tarPadding(ev.header.size));
          passData = false;
        }
      }
      // One chunk out per chunk in: few large pipe writes.
      if (out.length > 0) yield out.take();
    }
    parser.finish();
    flushHeld();
    out.push(TAR_END);
    yield out.take();
    resolve({ diffId: `sha256:${hasher.digest("hex")}`, size, entries });
  }

  return { output, result };
}
