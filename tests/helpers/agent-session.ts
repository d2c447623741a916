/**
 * A host end of the agent protocol for tests: calls, events, and machine exec io frames,
 * over a VM's serial chardev (SYNC handshake) or the host agent's Unix socket.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { connect, type Socket } from "node:net";
import { FrameDecoder, encodeFrame } from "../../guest/protocol/frames.ts";
import { SYNC, SyncScanner } from "../../guest/protocol/sync.ts";
import { MachineService, RuntimeEventSchema, type RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";

type Methods = typeof MachineService.method;
type Method = Exclude<keyof Methods, "list" | "events">;
export interface IoFrame {
  k: "io";
  sid: string;
  fd: number;
  data?: Uint8Array;
  eof?: boolean;
}

/** One host session on the agent's serial port: SYNC handshake, then calls, events, io. */
export class AgentSession {
  private nextId = 1;
  private pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  readonly events: RuntimeEvent[] = [];
  private eventWaiters: (() => void)[] = [];
  private ioListeners = new Set<(f: IoFrame) => void>();
  closed = false;

  private constructor(readonly socket: Socket) {}

  /**
   * Connects to an agent socket. sync: it is a VM's serial chardev: send SYNC and wait
   * for the guest's (the agent is up); otherwise frames start at once (the host agent).
   */
  static async open(path: string, o: { sync: boolean; timeoutMs?: number }): Promise<AgentSession> {
    const timeoutMs = o.timeoutMs ?? 120_000;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const session = new AgentSession(socket);
    const scanner = new SyncScanner();
    if (!o.sync) scanner.push(SYNC);
    const decoder = new FrameDecoder();
    let synced!: () => void;
    const ready = new Promise<void>((r) => (synced = r));
    socket.on("data", (chunk: Buffer) => {
      const rest = scanner.synced ? chunk : scanner.push(chunk);
      if (rest === undefined) return;
      synced();
      for (const f of decoder.push(rest)) session.onFrame(f as { k: string });
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      session.closed = true;
      for (const p of session.pending.values()) p.reject(new Error("agent session closed"));
      session.pending.clear();
    });
    if (o.sync) socket.write(SYNC);
    else synced();
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    await Promise.race([ready, new Promise((_, rej) => socket.once("close", () => rej(new Error("no SYNC from the guest"))))]);
    clearTimeout(timer);
    return session;
  }

  async call<K extends Method>(method: K, req: MessageInitShape<Methods[K]["input"]>): Promise<MessageShape<Methods[K]["output"]>> {
    const desc = MachineService.method[method] as unknown as { input: DescMessage; output: DescMessage };
    const id = this.nextId++;
    const answer = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.socket.write(encodeFrame({ k: "req", id, method, body: toBinary(desc.input, create(desc.input, req as never)) }));
    return fromBinary(desc.output, await answer) as MessageShape<Methods[K]["output"]>;
  }

  sendIo(f: Omit<IoFrame, "k">): void {
    this.socket.write(encodeFrame({ k: "io", ...f }));
  }

  onIo(l: (f: IoFrame) => void): () => void {
    this.ioListeners.add(l);
    return () => this.ioListeners.delete(l);
  }

  async waitEvent(match: (e: RuntimeEvent) => boolean, timeoutMs = 60_000): Promise<RuntimeEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find(match);
      if (e) return e;
      if (Date.now() > deadline || this.closed) throw new Error("event did not come");
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(0, deadline - Date.now()));
        this.eventWaiters.push(() => (clearTimeout(t), r()));
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private onFrame(f: { k: string; id?: number; body?: Uint8Array; error?: { code: string; message: string } }): void {
    if (f.k === "evt" && f.body) {
      this.events.push(fromBinary(RuntimeEventSchema, f.body));
      for (const w of this.eventWaiters.splice(0)) w();
    } else if (f.k === "io") {
      for (const l of this.ioListeners) l(f as unknown as IoFrame);
    } else if (f.k === "res" && f.id !== undefined) {
      const p = this.pending.get(f.id);
      if (!p) return;
      this.pending.delete(f.id);
      if (f.error) p.reject(Object.assign(new Error(f.error.message), { code: f.error.code }));
      else p.resolve(f.body ?? new Uint8Array());
    }
  }
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

let execSeq = 0;

/** Runs a machine exec to its end: collects fd 1/2, feeds `stdin` (then EOF) if given. */
export async function machineExec(
  s: AgentSession,
  args: string[],
  o: { stdin?: string; tty?: boolean; rows?: number; cols?: number; env?: string[]; cwd?: string; onStart?: (id: string) => void | Promise<void> } = {},
): Promise<ExecResult> {
  const execId = `mx-${process.pid}-${++execSeq}`;
  const out = { 1: [] as Buffer[], 2: [] as Buffer[] };
  const eofs = new Set<number>();
  let allEof!: () => void;
  const done = new Promise<void>((r) => (allEof = r));
  const off = s.onIo((f) => {
    if (f.sid !== execId) return;
    if (f.data) out[f.fd as 1 | 2].push(Buffer.from(f.data));
    if (f.eof) eofs.add(f.fd);
    if (eofs.has(1) && (o.tty || eofs.has(2))) allEof();
  });
  try {
    await s.call("machineExec", { execId, args, env: o.env ?? [], cwd: o.cwd ?? "", tty: !!o.tty, rows: o.rows ?? 0, cols: o.cols ?? 0, stdin: o.stdin !== undefined });
    await o.onStart?.(execId);
    if (o.stdin !== undefined) {
      if (o.stdin.length) s.sendIo({ sid: execId, fd: 0, data: Buffer.from(o.stdin) });
      s.sendIo({ sid: execId, fd: 0, eof: true });
    }
    const exit = await s.waitEvent((e) => e.type === "machine_exec_exit" && e.execId === execId);
    // The exit event follows the last output frame on the same stream.
    expectDone(eofs, o.tty);
    await done;
    return { stdout: Buffer.concat(out[1]).toString(), stderr: Buffer.concat(out[2]).toString(), exitCode: exit.exitCode };
  } finally {
    off();
  }
}

function expectDone(eofs: Set<number>, tty?: boolean): void {
  if (!eofs.has(1) || (!tty && !eofs.has(2))) throw new Error("machine_exec_exit arrived before the output's eof frames");
}
