/**
 * Framing of the agent protocol: each message is a 4-byte big-endian length followed by
 * a msgpack body. Transport-neutral: works over any byte stream (Unix socket on a Linux
 * host, virtio-serial or vsock inside a VM).
 */
// The "pack" entry is msgpackr's pure-JS build: the main entry also loads the optional
// native string extractor (msgpackr-extract, and libstdc++ with it: ~1 MB resident in
// every process that frames agent messages), which only pays on large string-heavy
// messages; ours are small control messages and binary stream data.
import { Packr } from "msgpackr/pack";

const packr = new Packr({ useRecords: false, moreTypes: false });
/** Guards against a corrupt length prefix making us buffer gigabytes. */
const MAX_FRAME = 64 << 20;

/** Payloads from this size are placed into the frame directly (see encodeWithData). */
const DIRECT_DATA_MIN = 1024;
const EMPTY = new Uint8Array(0);

export function encodeFrame(message: unknown): Buffer {
  const data = (message as { data?: unknown } | null)?.data;
  if (data instanceof Uint8Array && data.length >= DIRECT_DATA_MIN) return encodeWithData(message as { data: Uint8Array }, data);
  return encodePacked(message);
}

function encodePacked(message: unknown): Buffer {
  const body = packr.pack(message);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/**
 * A message carrying bulk bytes (an io frame's `data`): the rest is packed with an empty
 * `data` last (msgpack `c4 00`), whose header is then widened to bin32 and the bytes copied
 * once, straight into the frame. Packing them (msgpackr's buffer) and then copying that
 * body into the frame cost a second copy of every byte, and in a TCG guest each copy of
 * a byte costs ~60 ns (the agent's share of container output).
 */
function encodeWithData(message: { data: Uint8Array }, data: Uint8Array): Buffer {
  const { data: _, ...rest } = message;
  const head = packr.pack({ ...rest, data: EMPTY });
  const n = head.length - 2;
  if (head[n] !== 0xc4 || head[n + 1] !== 0) return encodePacked(message); // not expected: msgpackr changed its encoding
  const frame = Buffer.allocUnsafe(4 + n + 5 + data.length);
  frame.writeUInt32BE(n + 5 + data.length, 0);
  head.copy(frame, 4, 0, n);
  frame[4 + n] = 0xc6;
  frame.writeUInt32BE(data.length, 5 + n);
  frame.set(data, 9 + n);
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
