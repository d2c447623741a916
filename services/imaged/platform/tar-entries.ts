/**
 * The one tar stream parser behind layer unpacking, the overlay layer filter and
 * docker load: it splits a byte stream into logical entries (PAX records, global PAX
 * records and GNU long names already applied to the header they describe) and their
 * data, without copying data bytes.
 *
 * Which entries carry data follows Go's archive/tar (and so moby): links, devices,
 * directories and FIFOs never do, whatever their size field says; every other type
 * (regular files, and types we do not know, such as GNU sparse) carries `size` bytes.
 */
import { ImageError } from "../core/errors.ts";
import { applyPax, BLOCK, cString, isZeroBlock, parseHeader, parsePax, type Header } from "./tar-format.ts";

export type TarEvent =
  /** A logical entry begins; its data (if any) follows as `data` events. */
  | { kind: "entry"; header: Header }
  /** A slice of the current entry's data: a view into the pushed chunk, valid until the next push. */
  | { kind: "data"; bytes: Uint8Array }
  /** The current entry is complete (right after `entry` when it has no data). */
  | { kind: "end"; header: Header };

const HEADER_ONLY = new Set(["1", "2", "3", "4", "5", "6"]);
const META = new Set(["x", "g", "L", "K"]);
/** Extended headers are read into memory: refuse absurd ones. */
const MAX_META_BYTES = 16 << 20;

export class TarEntryParser {
  private readonly header = new Uint8Array(BLOCK);
  private headerFill = 0;
  /** Data bytes left in the current (logical or meta) entry, then its padding. */
  private remaining = 0;
  private padding = 0;
  private current: Header | undefined;
  private meta: { type: string; data: Uint8Array; fill: number } | undefined;
  private pendingPax: Map<string, Uint8Array> | undefined;
  private globalPax: Map<string, Uint8Array> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private ended = false;

  /** `what` names the input in errors: "layer" or "archive". */
  constructor(private readonly what: "layer" | "archive") {}

  /** True once the end-of-archive marker has been read (later bytes are ignored). */
  get done(): boolean {
    return this.ended;
  }

  /** Parses one chunk. Consume the events before the next push: data views alias `chunk`. */
  *push(chunk: Uint8Array): Generator<TarEvent> {
    let off = 0;
    while (off < chunk.length && !this.ended) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        const part = chunk.subarray(off, off + n);
        off += n;
        this.remaining -= n;
        if (this.meta) {
          this.meta.data.set(part, this.meta.fill);
          this.meta.fill += n;
          if (this.remaining === 0) this.finishMeta();
        } else {
          yield { kind: "data", bytes: part };
          if (this.remaining === 0) yield this.finishEntry();
        }
      } else if (this.padding > 0) {
        const n = Math.min(this.padding, chunk.length - off);
        off += n;
        this.padding -= n;
      } else {
        const n = Math.min(BLOCK - this.headerFill, chunk.length - off);
        this.header.set(chunk.subarray(off, off + n), this.headerFill);
        this.headerFill += n;
        off += n;
        if (this.headerFill < BLOCK) continue;
        this.headerFill = 0;
        const ev = this.onHeader();
        if (ev) {
          yield ev;
          if (this.remaining === 0) yield this.finishEntry();
        }
      }
    }
  }

  /** Call at the end of input: throws if it stopped inside an entry or header. */
  finish(): void {
    if (this.ended) return;
    if (this.remaining > 0 || this.current || this.meta || this.headerFill > 0) {
      throw new ImageError("invalid_argument", `invalid ${this.what}: unexpected end of tar stream (truncated ${this.what})`);
    }
  }

  /** A full header block: the end marker, a meta entry (kept), or a logical entry's start. */
  private onHeader(): TarEvent | undefined {
    if (isZeroBlock(this.header)) {
      this.ended = true;
      return undefined;
    }
    const h = parseHeader(this.header);
    if (META.has(h.type)) {
      if (h.size > MAX_META_BYTES) throw new ImageError("invalid_argument", `invalid ${this.what}: oversized extended header`);
      this.meta = { type: h.type, data: new Uint8Array(h.size), fill: 0 };
      this.setData(h.size);
      if (h.size === 0) this.finishMeta();
      return undefined;
    }
    if (this.globalPax) applyPax(h, this.globalPax);
    if (this.pendingPax) applyPax(h, this.pendingPax);
    if (this.longName !== undefined) h.name = this.longName;
    if (this.longLink !== undefined) h.linkname = this.longLink;
    this.pendingPax = undefined;
    this.longName = this.longLink = undefined;
    this.current = h;
    this.setData(HEADER_ONLY.has(h.type) ? 0 : h.size);
    return { kind: "entry", header: h };
  }

  private setData(bytes: number): void {
    this.remaining = bytes;
    this.padding = (BLOCK - (bytes % BLOCK)) % BLOCK;
  }

  private finishMeta(): void {
    const m = this.meta!;
    const data = m.data.subarray(0, m.fill);
    if (m.type === "x") this.pendingPax = parsePax(data);
    else if (m.type === "g") this.globalPax = parsePax(data);
    else if (m.type === "L") this.longName = cString(data, 0, data.length);
    else this.longLink = cString(data, 0, data.length);
    this.meta = undefined;
  }

  private finishEntry(): TarEvent {
    const h = this.current!;
    this.current = undefined;
    return { kind: "end", header: h };
  }
}
