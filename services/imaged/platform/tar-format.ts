/**
 * The tar format itself: ustar/GNU header parsing (octal and base-256 numbers,
 * checksums, prefixes) and PAX extended records. Shared by the layer extractor and
 * the archive reader used by docker load.
 */
import { ImageError } from "../core/errors.ts";

export interface Header {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  type: string;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs?: Map<string, Uint8Array>;
}

export const BLOCK = 512;
export const textDecoder = new TextDecoder();

export function cString(b: Uint8Array, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return textDecoder.decode(b.subarray(off, end));
}

export function numeric(b: Uint8Array, off: number, len: number): number {
  if (b[off]! & 0x80) {
    // GNU base-256: big-endian, first byte's top bit is the marker.
    let v = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + b[off + i]!;
    return v;
  }
  // Octal digits, possibly padded with spaces or NULs (parsed by hand: this runs per entry).
  let v = 0;
  for (let i = off, end = off + len; i < end; i++) {
    const c = b[i]!;
    if (c >= 0x30 && c <= 0x37) v = v * 8 + (c - 0x30);
    else if (c === 0 || (c === 0x20 && v > 0)) break;
  }
  return v;
}

/** True for an all-zero block (the end-of-archive marker). */
export function isZeroBlock(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

export function parseHeader(b: Uint8Array): Header {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : b[i]!;
  const recorded = numeric(b, 148, 8);
  if (recorded !== sum) throw new ImageError("invalid_argument", "invalid layer: tar header checksum mismatch (corrupt or truncated layer)");
  let name = cString(b, 0, 100);
  const magic = cString(b, 257, 6);
  if (magic.startsWith("ustar")) {
    const prefix = cString(b, 345, 155);
    if (prefix && magic === "ustar") name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: numeric(b, 100, 8) & 0o7777,
    uid: numeric(b, 108, 8),
    gid: numeric(b, 116, 8),
    size: numeric(b, 124, 12),
    mtime: numeric(b, 136, 12),
    type: String.fromCharCode(b[156] || 48),
    linkname: cString(b, 157, 100),
    devmajor: numeric(b, 329, 8),
    devminor: numeric(b, 337, 8),
  };
}

/** PAX extended header records: "LEN key=value\n". */
export function parsePax(data: Uint8Array): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  let off = 0;
  while (off < data.length) {
    let sp = off;
    while (sp < data.length && data[sp] !== 0x20) sp++;
    const len = parseInt(textDecoder.decode(data.subarray(off, sp)), 10);
    if (!len || len <= 0) break;
    const rec = data.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq > 0) out.set(textDecoder.decode(rec.subarray(0, eq)), rec.subarray(eq + 1));
    off += len;
  }
  return out;
}

export function applyPax(h: Header, pax: Map<string, Uint8Array>): void {
  for (const [key, raw] of pax) {
    const v = () => textDecoder.decode(raw);
    if (key === "path") h.name = v();
    else if (key === "linkpath") h.linkname = v();
    else if (key === "size") h.size = Number(v());
    else if (key === "uid") h.uid = Number(v());
    else if (key === "gid") h.gid = Number(v());
    else if (key === "mtime") h.mtime = Number(v());
    else if (key.startsWith("SCHILY.xattr.")) (h.xattrs ??= new Map()).set(key.slice("SCHILY.xattr.".length), raw);
    else if (key.startsWith("LIBARCHIVE.xattr.")) (h.xattrs ??= new Map()).set(decodeURIComponent(key.slice("LIBARCHIVE.xattr.".length)), Buffer.from(v(), "base64"));
  }
}
