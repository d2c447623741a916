/**
 * Docker's stdio stream framing: without a TTY each chunk is prefixed by an 8-byte
 * header (stream id: 0 stdin, 1 stdout, 2 stderr; 3 bytes zero; big-endian length).
 */
export const STDOUT = 1;
export const STDERR = 2;

export function frame(stream: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, payload.length);
  out.set(payload, 8);
  return out;
}

/**
 * Incremental parser that keeps only wanted streams of a multiplexed byte stream
 * (for attach with only one of stdout/stderr). Passes frames through unchanged, or
 * with `strip` only their payloads (a WebSocket attach is never multiplexed).
 */
export class FrameFilter {
  private buf: Buffer = Buffer.alloc(0);
  constructor(
    private readonly keep: (stream: number) => boolean,
    private readonly strip = false,
  ) {}

  push(chunk: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    while (this.buf.length >= 8) {
      const len = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + len) break;
      if (this.keep(this.buf[0]!)) out.push(this.buf.subarray(this.strip ? 8 : 0, 8 + len));
      this.buf = this.buf.subarray(8 + len);
    }
    return out;
  }
}
