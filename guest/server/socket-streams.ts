/**
 * Socket streams: a host connection to a stdio socket inside the machine, carried over
 * the agent stream (VM mode). The host opens a stream with an "open" frame naming a
 * socket under the agent's io dir; its bytes travel as io frames (fd 0 in, fd 1 out),
 * half-closes as `eof`, the end as `close`. Each stream belongs to the agent connection
 * that opened it and ends with it.
 */
import { connect, type Socket } from "node:net";
import type { ByteStream } from "../../lib/ipc/fifo-stream.ts";
import { resolve, sep } from "node:path";
import { encodeFrame } from "../protocol/frames.ts";
import type { IoFrame, OpenFrame } from "../protocol/messages.ts";

interface Stream {
  owner: ByteStream;
  socket: Socket;
}

export class SocketStreams {
  private readonly streams = new Map<string, Stream>();

  /** `allowedDir`: only sockets directly under it may be opened (the agent's io dir). */
  constructor(private readonly allowedDir: string) {}

  open(owner: ByteStream, f: OpenFrame): void {
    const send = (frame: IoFrame) => {
      if (!owner.destroyed) owner.write(encodeFrame(frame));
    };
    const path = resolve(String(f.path));
    if (typeof f.sid !== "string" || !f.sid || this.streams.has(f.sid) || !path.startsWith(this.allowedDir + sep)) {
      send({ k: "io", sid: String(f.sid), fd: 1, close: true });
      return;
    }
    const socket = connect({ path, allowHalfOpen: true });
    this.streams.set(f.sid, { owner, socket });
    socket.on("data", (data: Buffer) => send({ k: "io", sid: f.sid, fd: 1, data }));
    socket.on("end", () => send({ k: "io", sid: f.sid, fd: 1, eof: true }));
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.streams.get(f.sid)?.socket !== socket) return;
      this.streams.delete(f.sid);
      send({ k: "io", sid: f.sid, fd: 1, close: true });
    });
  }

  /** Input for a stream; false when `f` is not a stream's (a machine exec's, then). */
  input(f: IoFrame): boolean {
    const s = this.streams.get(f.sid);
    if (!s) return false;
    if (f.close) {
      this.streams.delete(f.sid);
      s.socket.destroy();
    } else if (f.eof) s.socket.end();
    else if (f.data) s.socket.write(f.data);
    return true;
  }

  /** The host connection went away: its streams end. */
  dropOwner(owner: ByteStream): void {
    for (const [sid, s] of this.streams) {
      if (s.owner !== owner) continue;
      this.streams.delete(sid);
      s.socket.destroy();
    }
  }
}
