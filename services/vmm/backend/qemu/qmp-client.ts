/**
 * A small QMP client (QEMU Machine Protocol: one JSON object per line over a Unix
 * socket). It negotiates capabilities, runs commands matched by id, and hands every
 * asynchronous event (SHUTDOWN, RESET, STOP, ...) to a callback. The socket closing is
 * how a caller learns the VM process is gone: nothing polls.
 */
import { connect, type Socket } from "node:net";
import { z } from "zod";
import { MachineError } from "../../core/machine-error.ts";

const greetingSchema = z.object({ QMP: z.object({ version: z.object({ qemu: z.object({ major: z.number(), minor: z.number(), micro: z.number() }) }) }) });
const messageSchema = z.union([
  z.object({ return: z.unknown(), id: z.number().optional() }),
  z.object({ error: z.object({ class: z.string(), desc: z.string() }), id: z.number().optional() }),
  z.object({ event: z.string(), data: z.record(z.string(), z.unknown()).optional(), timestamp: z.unknown().optional() }),
]);

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient {
  private nextId = 1;
  private pending = new Map<number, Pending>();
  private buffer = "";
  private closed = false;
  private readonly closedPromise: Promise<void>;
  /** QEMU's version from the greeting, e.g. "7.2.22". */
  version = "";

  private constructor(
    private readonly socket: Socket,
    private readonly onEvent: (e: QmpEvent) => void,
  ) {
    this.closedPromise = new Promise((resolve) => {
      socket.on("close", () => {
        this.closed = true;
        for (const p of this.pending.values()) p.reject(new MachineError("unavailable", "the QMP connection closed (the VM process exited)"));
        this.pending.clear();
        resolve();
      });
    });
    socket.on("error", () => {});
  }

  /**
   * Connects to a QMP socket and negotiates capabilities. `onEvent` sees events that
   * arrive after the negotiation.
   */
  static async connect(path: string, onEvent: (e: QmpEvent) => void, timeoutMs = 10_000): Promise<QmpClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once("connect", () => {
        s.removeAllListeners("error");
        resolve(s);
      });
      s.once("error", (err) => reject(new MachineError("unavailable", `cannot connect to QMP at ${path}: ${err.message}`)));
    });
    const client = new QmpClient(socket, onEvent);
    let greeted: (v: unknown) => void = () => {};
    const greeting = new Promise<unknown>((r) => (greeted = r));
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => client.onData(chunk, greeted));
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    try {
      const hello = greetingSchema.safeParse(await Promise.race([greeting, client.closedPromise.then(() => undefined)]));
      if (!hello.success) throw new MachineError("unavailable", `no QMP greeting on ${path}`);
      const v = hello.data.QMP.version.qemu;
      client.version = `${v.major}.${v.minor}.${v.micro}`;
      await client.execute("qmp_capabilities");
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** Resolves when the connection is gone (the VM exited, or close()). */
  get closedSignal(): Promise<void> {
    return this.closedPromise;
  }

  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) throw new MachineError("unavailable", "the QMP connection is closed");
    const id = this.nextId++;
    const answer = new Promise<unknown>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id })}\n`);
    return answer;
  }

  /** `query-status`: e.g. { running: true, status: "running" }. */
  async queryStatus(): Promise<{ running: boolean; status: string }> {
    return z.object({ running: z.boolean(), status: z.string() }).parse(await this.execute("query-status"));
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: string, greeted: (v: unknown) => void): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf("\n")) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (!line) continue;
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        this.socket.destroy();
        return;
      }
      if (json && typeof json === "object" && "QMP" in json) {
        greeted(json);
        continue;
      }
      const msg = messageSchema.safeParse(json);
      if (!msg.success) continue;
      const m = msg.data;
      if ("event" in m) {
        this.onEvent({ event: m.event, data: m.data ?? {} });
        continue;
      }
      const p = m.id !== undefined ? this.pending.get(m.id) : undefined;
      if (!p) continue;
      this.pending.delete(m.id!);
      if ("error" in m) p.reject(new MachineError("internal", `QMP: ${m.error.class}: ${m.error.desc}`));
      else p.resolve(m.return);
    }
  }
}
