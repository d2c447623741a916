/**
 * Framing of the agent protocol: each message is a 4-byte big-endian length followed by
 * a msgpack body. Transport-neutral: works over any byte stream (Unix socket on a Linux
 * host, virtio-serial or vsock inside a VM).
 */
import { Packr } from "msgpackr";

const packr = new Packr({ useRecords: false, moreTypes: false });
/** Guards against a corrupt length prefix making us buffer gigabytes. */
const MAX_FRAME = 64 << 20;

export function encodeFrame(message: unknown): Buffer {
  const body = packr.pack(message);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/** Reassembles frames from arbitrary chunks of the stream. */
export class FrameDecoder {
  private pending: Buffer | undefined;

  push(chunk: Buffer): unknown[] {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: unknown[] = [];
    while (buf.length >= 4) {
      const len = buf.readUInt32BE(0);
      if (len > MAX_FRAME) throw new Error(`agent protocol: frame of ${len} bytes exceeds the limit`);
      if (buf.length < 4 + len) break;
      out.push(packr.unpack(buf.subarray(4, 4 + len)));
      buf = buf.subarray(4 + len);
    }
    this.pending = buf.length ? buf : undefined;
    return out;
  }
}
