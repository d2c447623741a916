/**
 * The server side of RFC 6455 on a hijacked connection, for the Docker API's WebSocket
 * endpoints (`/containers/{id}/attach/ws`): the handshake, and a Duplex whose writes go
 * out as one data frame each and whose reads are the payloads of the client's data
 * frames (unmasked, fragments joined). Ping is answered; a close frame ends the
 * readable side and is answered; a protocol error closes with its status code.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { Duplex } from "node:stream";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Larger messages are refused (1009): stdin arrives in terminal-sized pieces. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export class WebSocketHandshakeError extends Error {}

/** Checks the client's opening handshake; returns the Sec-WebSocket-Accept value. */
export function acceptHandshake(req: IncomingMessage): string {
  const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
  if (req.method !== "GET" || !upgrade.split(/\s*,\s*/).includes("websocket")) {
    throw new WebSocketHandshakeError("websocket: the client is not using the websocket protocol");
  }
  if (req.headers["sec-websocket-version"] !== "13") throw new WebSocketHandshakeError("websocket: unsupported version (13 is)");
  const key = String(req.headers["sec-websocket-key"] ?? "");
  if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) throw new WebSocketHandshakeError("websocket: invalid Sec-WebSocket-Key");
  return createHash("sha1")
    .update(key + GUID)
    .digest("base64");
}

export function handshakeResponse(accept: string): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

/** One unmasked server frame (servers never mask, RFC 6455 5.1). */
export function encodeFrame(opcode: number, payload: Uint8Array): Buffer {
  const n = payload.length;
  const headerLen = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerLen + n);
  out[0] = 0x80 | opcode;
  if (n < 126) out[1] = n;
  else if (n < 65536) {
    out[1] = 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(n), 2);
  }
  out.set(payload, headerLen);
  return out;
}

const closePayload = (code: number) => {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(code);
  return b;
};

/** Status codes a peer may send in a close frame (RFC 6455 7.4), which are echoed back. */
const echoable = (code: number) => (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);

/**
 * The header of the frame at the start of `b`: its size with the masking key (`size`)
 * and the payload length, or undefined while the header is incomplete.
 */
function frameHeader(b: Buffer): { size: number; len: bigint } | undefined {
  if (b.length < 2) return undefined;
  const len7 = b[1]! & 0x7f;
  const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
  const masked = (b[1]! & 0x80) !== 0;
  const size = 2 + extra + (masked ? 4 : 0);
  if (b.length < 2 + extra) return undefined;
  const len = len7 === 126 ? BigInt(b.readUInt16BE(2)) : len7 === 127 ? b.readBigUInt64BE(2) : BigInt(len7);
  return { size, len };
}

/** How long a closing connection may take to finish the close handshake before it is cut. */
const CLOSE_GRACE_MS = 5_000;

/**
 * The message stream of a WebSocket over `socket`. `binary` picks the opcode of the
 * frames written (Docker: binary from API 1.28, text before). Input is parsed only
 * until the connection starts closing; after that it is read and dropped, so a client
 * that never answers the close cannot pile it up, and the socket is cut after a grace.
 */
export class WebSocketDuplex extends Duplex {
  /** Unparsed input, joined only once it holds `need` bytes (no copy per chunk). */
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = 2;
  private fragments: Buffer[] = [];
  private fragmentBytes = 0;
  /** Our close frame is sent (or the socket is gone): input is drained, writes dropped. */
  private closing = false;
  private inputEnded = false;
  private graceTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly socket: Duplex,
    private readonly binary: boolean,
    head?: Buffer,
  ) {
    super();
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.once("end", () => this.endInput());
    // The client went: what it sent is still read (stdin to the end), writes are dropped.
    socket.once("close", () => {
      clearTimeout(this.graceTimer);
      this.closing = true;
      this.endInput();
      if (this.readableEnded) this.destroy();
      else {
        this.once("end", () => this.destroy());
        setTimeout(() => this.destroy(), CLOSE_GRACE_MS).unref?.();
      }
    });
    // A reset connection ends the session like a close; it is not this stream's error.
    socket.on("error", () => socket.destroy());
    if (head?.length) this.onData(head);
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.closing || this.socket.destroyed) {
      cb();
      return;
    }
    if (this.socket.write(encodeFrame(this.binary ? OP.binary : OP.text, chunk))) cb();
    else this.socket.once("drain", () => cb());
  }

  /** Our side is done: a normal close frame; the client answers it and goes. */
  override _final(cb: (err?: Error | null) => void): void {
    this.startClosing(1000);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.graceTimer);
    this.socket.destroy();
    cb(err);
  }

  /**
   * Sends our close frame (once) and half-closes; from here the input is drained, not
   * parsed, and the socket is cut if the client has not closed it within the grace.
   */
  private startClosing(code: number): void {
    if (!this.closing && !this.socket.destroyed) this.socket.write(encodeFrame(OP.close, closePayload(code)));
    this.closing = true;
    this.chunks = [];
    this.fragments = [];
    if (!this.socket.destroyed) this.socket.end();
    this.socket.resume();
    this.graceTimer ??= setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
  }

  private endInput(): void {
    if (this.inputEnded) return;
    this.inputEnded = true;
    this.push(null);
  }

  /** Closes with `code` and ends the input (a close frame came, or the input broke the protocol). */
  private closeWith(code: number): void {
    this.startClosing(code);
    this.endInput();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered < this.need) return;
    let b = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
    for (;;) {
      const h = frameHeader(b);
      if (!h) break;
      const refusal = this.refusal(b, h.len);
      if (refusal) {
        this.closeWith(refusal);
        return;
      }
      const end = h.size + Number(h.len);
      if (b.length < end) break;
      const mask = b.subarray(h.size - 4, h.size);
      const payload = Buffer.from(b.subarray(h.size, end));
      for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i & 3]!;
      const fin = (b[0]! & 0x80) !== 0;
      const opcode = b[0]! & 0x0f;
      b = b.subarray(end);
      if (!this.onFrame(fin, opcode, payload)) return;
    }
    this.chunks = b.length ? [b] : [];
    this.buffered = b.length;
    // The next parse waits for the whole frame (its header says how long) or header.
    const h = frameHeader(b);
    this.need = h && h.len <= BigInt(MAX_MESSAGE_BYTES) ? h.size + Number(h.len) : (h?.size ?? 2);
  }

  /**
   * The close status a frame is refused with, or 0. Clients must mask (RFC 6455 5.1);
   * reserved bits must be clear without extensions; control frames are single frames of
   * at most 125 bytes (5.5).
   */
  private refusal(b: Buffer, len: bigint): number {
    const control = (b[0]! & 0x0f) >= 0x8;
    if ((b[1]! & 0x80) === 0 || (b[0]! & 0x70) !== 0) return 1002;
    if (control && ((b[0]! & 0x80) === 0 || len > 125n)) return 1002;
    return len > BigInt(MAX_MESSAGE_BYTES) ? 1009 : 0;
  }

  /** Handles one frame; false once the connection is closing. */
  private onFrame(fin: boolean, opcode: number, payload: Buffer): boolean {
    switch (opcode) {
      case OP.ping:
        this.socket.write(encodeFrame(OP.pong, payload));
        return true;
      case OP.pong:
        return true;
      case OP.close: {
        // Echo the peer's status code (RFC 6455 5.5.1); none reads as a normal close.
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1000;
        this.closeWith(payload.length === 1 || !echoable(code) ? 1002 : code);
        return false;
      }
      case OP.text:
      case OP.binary:
      case OP.continuation: {
        if ((opcode === OP.continuation) !== this.fragments.length > 0) {
          this.closeWith(1002);
          return false;
        }
        this.fragmentBytes += payload.length;
        if (this.fragmentBytes > MAX_MESSAGE_BYTES) {
          this.closeWith(1009);
          return false;
        }
        this.fragments.push(payload);
        if (!fin) return true;
        const message = this.fragments.length === 1 ? this.fragments[0]! : Buffer.concat(this.fragments);
        this.fragments = [];
        this.fragmentBytes = 0;
        if (message.length && !this.push(message)) this.socket.pause();
        return true;
      }
      default:
        this.closeWith(1002);
        return false;
    }
  }
}
