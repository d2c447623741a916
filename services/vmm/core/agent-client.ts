/**
 * vmm's end of the agent protocol (guest/README.md) over any byte stream: typed calls of
 * MachineService methods (protobuf bodies in msgpack frames, matched by id) and a
 * callback for the runtime events the agent pushes.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import type { ByteStream } from "../../../lib/ipc/fifo-stream.ts";
import { MachineService, RuntimeEventSchema, type RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { FrameDecoder, encodeFrame } from "../../../guest/protocol/frames.ts";
import type { AgentFrame, AgentMethod, IoFrame } from "../../../guest/protocol/messages.ts";
import { MachineError } from "./machine-error.ts";

type Methods = typeof MachineService.method;

export type { AgentMethod, IoFrame };
/** What vmm may call on an agent: the forwarded methods, and `events` naming a FIFO (the host agent's own subscription). */
type CallableMethod = AgentMethod | "events";

interface Pending {
  resolve: (body: Uint8Array) => void;
  reject: (err: Error) => void;
}

/**
 * How long a call expected to be quick (starting a machine exec, a resize, a signal,
 * power-off) may go unanswered before the session counts as stalled. Inside a VM an
 * agent that died and was restarted by stage 2 leaves the host's session talking to
 * nobody, and nothing signals that but silence (guest/README.md, "Sessions"). Generous,
 * as a TCG guest on a loaded host is slow.
 */
export const QUICK_CALL_TIMEOUT_MS = Number(process.env.ARCBOX_AGENT_CALL_TIMEOUT_MS ?? 60_000);

export interface CallOptions {
  /** Reject (and report the session stalled, `onStalled`) after this long without an answer. */
  timeoutMs?: number;
}

export class AgentClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private closed = false;

  /** Exec stdio frames from a VM's agent (`{k:"io", sid, fd, data | eof}`). */
  onIo: ((f: IoFrame) => void) | undefined;
  /** A call with a timeout went unanswered: the session is presumed dead (once per client). */
  onStalled: (() => void) | undefined;
  private stalled = false;

  constructor(
    private readonly socket: ByteStream,
    private readonly onEvent: (e: RuntimeEvent) => void,
    onClose: () => void,
    /** Sees each chunk before the frame decoder; returns what to decode (undefined: nothing yet). */
    filter?: (chunk: Buffer) => Buffer | undefined,
  ) {
    const decoder = new FrameDecoder();
    socket.on("data", (raw: Buffer) => {
      const chunk = filter ? filter(raw) : raw;
      if (!chunk?.length) return;
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const f of frames) this.onFrame(f as AgentFrame);
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new MachineError("unavailable", "the guest agent connection closed during the call"));
      this.pending.clear();
      onClose();
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  async call<K extends CallableMethod>(method: K, req: MessageShape<Methods[K]["input"]> | MessageInitShape<Methods[K]["input"]>, opts: CallOptions = {}): Promise<MessageShape<Methods[K]["output"]>> {
    if (this.closed) throw new MachineError("unavailable", "the guest agent is not connected");
    const desc = MachineService.method[method] as unknown as { input: DescMessage; output: DescMessage };
    const id = this.nextId++;
    const body = toBinary(desc.input, create(desc.input, req as never));
    let timer: Timer | undefined;
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      if (opts.timeoutMs === undefined) return;
      timer = setTimeout(() => {
        if (!this.pending.delete(id)) return;
        reject(new MachineError("unavailable", `the guest agent did not answer ${method} within ${Math.round(opts.timeoutMs! / 1000)}s; reconnecting to it`));
        if (!this.stalled) {
          this.stalled = true;
          // After the caller has seen its rejection (it reports why it failed).
          setTimeout(() => this.onStalled?.(), 0);
        }
      }, opts.timeoutMs);
    });
    this.socket.write(encodeFrame({ k: "req", id, method, body }));
    try {
      return fromBinary(desc.output, await answer) as MessageShape<Methods[K]["output"]>;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends exec stdin bytes (fd 0) or its end to the agent. */
  sendIo(sid: string, data: Uint8Array | "eof"): void {
    if (this.closed) return;
    this.socket.write(encodeFrame(data === "eof" ? { k: "io", sid, fd: 0, eof: true } : { k: "io", sid, fd: 0, data }));
  }

  /** Opens a socket stream to `path` in the guest (guest/server/socket-streams.ts). */
  openStream(sid: string, path: string): void {
    if (!this.closed) this.socket.write(encodeFrame({ k: "open", sid, path }));
  }

  /** Starts a files operation as stream `sid` (guest/server/file-streams.ts). */
  openFiles(sid: string, req: unknown): void {
    if (!this.closed) this.socket.write(encodeFrame({ k: "files", sid, req }));
  }

  /** Asks the agent to stop or go on reading the source of a stream's `fd`. */
  flow(sid: string, fd: number, what: "pause" | "resume"): void {
    if (!this.closed) this.socket.write(encodeFrame({ k: "io", sid, fd, [what]: true }));
  }

  /** A files stream's output handed on so far (the agent's send window). */
  ack(sid: string, bytes: number): void {
    if (!this.closed) this.socket.write(encodeFrame({ k: "io", sid, fd: 1, ack: bytes }));
  }

  /** Ends a socket stream both ways. */
  closeStream(sid: string): void {
    if (!this.closed) this.socket.write(encodeFrame({ k: "io", sid, fd: 0, close: true }));
  }

  close(): void {
    this.socket.destroy();
  }

  private onFrame(f: AgentFrame): void {
    if (f.k === "io") {
      this.onIo?.(f);
      return;
    }
    if (f.k === "evt") {
      this.onEvent(fromBinary(RuntimeEventSchema, f.body));
      return;
    }
    if (f.k !== "res") return;
    const p = this.pending.get(f.id);
    if (!p) return;
    this.pending.delete(f.id);
    if (f.error) p.reject(new MachineError(f.error.code, f.error.message));
    else p.resolve(f.body ?? new Uint8Array());
  }
}
