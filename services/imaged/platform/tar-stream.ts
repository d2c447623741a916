/**
 * Generic tar streaming for image archives (docker save / load): a reader that hands
 * each entry's data to a sink as it arrives, and a writer that produces headers and
 * padding around data the caller streams.
 */
import { ImageError } from "../core/errors.ts";
import { TarEntryParser } from "./tar-entries.ts";
import { BLOCK, type Header } from "./tar-format.ts";

export interface EntrySink {
  write(chunk: Uint8Array): void | Promise<void>;
  end(): void | Promise<void>;
}

/** Reads a tar stream; `onEntry` returns a sink for entries whose data it wants. */
export async function readTar(stream: AsyncIterable<Uint8Array>, onEntry: (h: Header) => EntrySink | undefined | Promise<EntrySink | undefined>): Promise<void> {
  const parser = new TarEntryParser("archive");
  let sink: EntrySink | undefined;
  // Read to the end (past the end marker too): the sender may still be writing its trailer.
  for await (const chunk of stream) {
    // The parser is suspended while a sink is awaited, so chunk views stay valid.
    for (const ev of parser.push(chunk)) {
      if (ev.kind === "entry") sink = await onEntry(ev.header);
      else if (ev.kind === "data") {
        if (sink) await sink.write(ev.bytes);
      } else if (sink) {
        await sink.end();
        sink = undefined;
      }
    }
  }
  parser.finish();
}

const enc = new TextEncoder();

/** A ustar header block for a regular file (names up to 100 bytes) or directory. */
export function tarHeader(name: string, size: number, type: "0" | "5" = "0", mtime = 0): Uint8Array {
  if (enc.encode(name).length > 100) throw new ImageError("internal", `archive entry name too long: ${name}`);
  const h = new Uint8Array(BLOCK);
  const put = (off: number, s: string) => h.set(enc.encode(s), off);
  const oct = (off: number, len: number, n: number) => put(off, `${n.toString(8).padStart(len - 1, "0")}\0`);
  put(0, name);
  oct(100, 8, type === "5" ? 0o755 : 0o644);
  oct(108, 8, 0);
  oct(116, 8, 0);
  oct(124, 12, size);
  oct(136, 12, mtime);
  put(148, "        ");
  put(156, type);
  put(257, "ustar\0");
  put(263, "00");
  let sum = 0;
  for (const b of h) sum += b;
  put(148, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

export function tarPadding(size: number): Uint8Array {
  return new Uint8Array((BLOCK - (size % BLOCK)) % BLOCK);
}

export const TAR_END = new Uint8Array(BLOCK * 2);

export interface TarEntry {
  name: string;
  type: "0" | "1" | "2" | "3" | "4" | "5" | "6";
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Uint8Array>;
}

function paxRecord(key: string, value: Uint8Array): Uint8Array {
  const k = enc.encode(` ${key}=`);
  let len = k.length + value.length + 1;
  len += String(len).length;
  if (String(len).length !== String(len - String(len).length).length) len++;
  const head = enc.encode(String(len));
  const out = new Uint8Array(len);
  out.set(head, 0);
  out.set(k, head.length);
  out.set(value, head.length + k.length);
  out[len - 1] = 0x0a;
  return out;
}

/** Header block(s) for an entry: a PAX header first for long names, links or xattrs. */
export function tarEntryHeader(e: TarEntry): Uint8Array {
  const records: Uint8Array[] = [];
  const name = e.type === "5" && !e.name.endsWith("/") ? `${e.name}/` : e.name;
  if (enc.encode(name).length > 100) records.push(paxRecord("path", enc.encode(name)));
  if (e.linkname && enc.encode(e.linkname).length > 100) records.push(paxRecord("linkpath", enc.encode(e.linkname)));
  if (e.uid > 0o7777777) records.push(paxRecord("uid", enc.encode(String(e.uid))));
  if (e.gid > 0o7777777) records.push(paxRecord("gid", enc.encode(String(e.gid))));
  if (e.size > 0o77777777777) records.push(paxRecord("size", enc.encode(String(e.size))));
  for (const [k, v] of e.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const h = new Uint8Array(BLOCK);
  const put = (off: number, len: number, s: string) => h.set(enc.encode(s).subarray(0, len), off);
  const oct = (off: number, len: number, n: number) =>
    put(
      off,
      len,
      `${Math.min(n, 8 ** (len - 1) - 1)
        .toString(8)
        .padStart(len - 1, "0")}\0`,
    );
  put(0, 100, name);
  oct(100, 8, e.mode & 0o7777);
  oct(108, 8, e.uid);
  oct(116, 8, e.gid);
  oct(124, 12, e.size);
  oct(136, 12, Math.max(0, Math.floor(e.mtime)));
  put(148, 8, "        ");
  put(156, 1, e.type);
  put(157, 100, e.linkname ?? "");
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  oct(329, 8, e.devmajor ?? 0);
  oct(337, 8, e.devminor ?? 0);
  let sum = 0;
  for (const b of h) sum += b;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  if (records.length === 0) return h;
  const paxData = Buffer.concat(records);
  const paxHead = tarHeader("PaxHeaders/entry", paxData.length);
  paxHead[156] = "x".charCodeAt(0);
  let sum2 = 0;
  paxHead.set(enc.encode("        "), 148);
  for (const b of paxHead) sum2 += b;
  paxHead.set(enc.encode(`${sum2.toString(8).padStart(6, "0")}\0 `), 148);
  return Buffer.concat([paxHead, paxData, tarPadding(paxData.length), h]);
}
