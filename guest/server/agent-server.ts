/**
 * Serves the agent protocol on a stream socket: framed msgpack requests answered in any
 * order (by id), plus runtime events pushed to every connection. Also listens for the
 * shims' one-line exit notifications on a second socket.
 *
 * On the host, vmm's long-lived session comes over a FIFO pair instead
 * (lib/ipc/fifo-stream.ts: an open socket connection wakes a Bun process every second),
 * one session at a time, each begun with SYNC both ways as on a serial port.
 */
import { rmSync, chmodSync, closeSync, constants } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { ensureFifo, FdStream, openReader, openWaiting, openWriterIfRead, type ByteStream } from "../../lib/ipc/fifo-stream.ts";
import { FifoSubscribers } from "../../lib/ipc/fifo-subscribers.ts";
import { ArcboxError } from "../../lib/errors.ts";
import type { Logger } from "../../lib/log.ts";
import { noteActivity } from "../../lib/service/settle-gc.ts";
// The static codec, not protobuf-es: its descriptor set-up is ~1.2 s of a TCG guest's start.
import { MachineServiceCodec, RuntimeEventCodec } from "../../proto/gen/arcbox/machines/v1/machines_codec.ts";
import type { EventsRequest } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { Agent } from "../core/agent.ts";
import { parseExitFields } from "../storage/records.ts";
import { FrameDecoder, encodeFrame } from "../protocol/frames.ts";
import type { FilesFrame, IoFrame, OpenFrame, RequestFrame, ResponseFrame } from "../protocol/messages.ts";
import { SYNC, SyncScanner } from "../protocol/sync.ts";
import { SocketStreams } from "./socket-streams.ts";
import { FileStreams } from "./file-streams.ts";

export interface AgentServerOptions {
  socket: string;
  notifySocket: string;
  /** The stdio sockets' dir: the host may open streams to sockets in it (VM mode). */
  ioDir?: string;
  /** Called when no client is connected and no request is running. */
  onIdle: () => void;
  /**
   * On the host: the home, under which a caller may name a FIFO to receive this
   * agent's events directly (apid's, handed over by vmm), so they need no vmm.
   */
  eventFifoDir?: string;
}

function listen(server: Server, path: string): Promise<void> {
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => {
      chmodSync(path, 0o600);
      resolve();
    });
  });
}

export class AgentServer {
  private clients = new Set<ByteStream>();
  /** Requests being handled (the agent never exits in the middle of one). */
  private inflight = 0;
  private main: Server;
  private notify: Server;
  private streams: SocketStreams | undefined;
  private readonly files: FileStreams;
  private readonly eventFifos: FifoSubscribers | undefined;

  constructor(
    private readonly agent: Agent,
    private readonly log: Logger,
    private readonly opts: AgentServerOptions,
  ) {
    this.main = createServer((s) => this.onClient(s));
    if (opts.ioDir) this.streams = new SocketStreams(opts.ioDir);
    this.files = new FileStreams(agent.layout, agent.records, log);
    this.notify = createServer((s) => this.onShim(s));
    if (opts.eventFifoDir) this.eventFifos = new FifoSubscribers(opts.eventFifoDir);
    agent.events.subscribe((e) => {
      const frame = encodeFrame({ k: "evt", body: RuntimeEventCodec.encode(e) });
      this.broadcast(frame);
      this.eventFifos?.write(frame);
    });
    // Machine exec output: to every client, like events (in a VM there is one, vmm).
    agent.machineExecs.onOutput((f) => this.broadcast(encodeFrame(f)));
  }

  async start(): Promise<void> {
    await listen(this.notify, this.opts.notifySocket);
    await listen(this.main, this.opts.socket);
  }

  private broadcast(frame: Buffer): void {
    for (const c of this.clients) c.write(frame);
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async stop(): Promise<void> {
    for (const c of this.clients) c.destroy();
    this.eventFifos?.close();
    await Promise.all([new Promise((r) => this.main.close(r)), new Promise((r) => this.notify.close(r))]);
    rmSync(this.opts.socket, { force: true });
    rmSync(this.opts.notifySocket, { force: true });
  }

  /**
   * Host sessions over the FIFO pair `inPath` (vmm → agent) and `outPath` (agent →
   * vmm), one after another: wait (in the thread pool, not polling) for vmm to open
   * `inPath`, open `outPath` (vmm opened its reader first), read vmm's SYNC, answer
   * SYNC, then serve frames until vmm goes (end of file or a broken pipe).
   */
  serveFifoSessions(inPath: string, outPath: string): void {
    ensureFifo(inPath);
    ensureFifo(outPath);
    void (async () => {
      for (;;) {
        try {
          const waited = await openWaiting(inPath, constants.O_RDONLY);
          // vmm's writer is there now: read through a non-blocking descriptor.
          let inFd: number;
          try {
            inFd = openReader(inPath);
          } finally {
            closeSync(waited);
          }
          const outFd = openWriterIfRead(outPath);
          if (outFd === undefined) {
            closeSync(inFd);
            continue;
          }
          const stream = new FdStream(inFd, outFd);
          const closed = new Promise<void>((r) => stream.on("close", r));
          const scanner = new SyncScanner();
          this.onClient(stream, (chunk) => {
            if (scanner.synced) return chunk;
            const rest = scanner.push(chunk);
            // vmm's SYNC: answer it; frames may follow in the same chunk.
            if (rest !== undefined) stream.write(SYNC);
            return rest;
          });
          await closed;
        } catch (err) {
          this.log.error("host session over FIFOs failed", { error: err });
          await Bun.sleep(1000);
        }
      }
    })();
  }

  private onClient(socket: ByteStream, filter?: (chunk: Buffer) => Buffer | undefined): void {
    this.clients.add(socket);
    const decoder = new FrameDecoder();
    socket.on("data", (raw) => {
      const chunk = filter ? filter(raw) : raw;
      if (!chunk?.length) return;
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.log.error("bad frame from client; closing", { error: err });
        socket.destroy();
        return;
      }
      for (const f of frames) {
        const k = (f as { k?: string })?.k;
        if (k === "io") {
          if (!this.streams?.input(f as IoFrame) && !this.files.input(f as IoFrame)) this.agent.machineExecs.input(f as IoFrame);
        } else if (k === "open") this.streams?.open(socket, f as OpenFrame);
        else if (k === "files") this.files.open(socket, f as FilesFrame);
        else void this.handle(socket, f as RequestFrame);
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.clients.delete(socket);
      this.streams?.dropOwner(socket);
      this.files.dropOwner(socket);
      this.checkIdle();
    });
  }

  private checkIdle(): void {
    if (this.clients.size === 0 && this.inflight === 0) this.opts.onIdle();
  }

  private async handle(socket: ByteStream, req: RequestFrame): Promise<void> {
    if (req?.k !== "req") return;
    // A call, and again its end, arm the collection after the burst (settle-gc.ts).
    noteActivity();
    this.inflight++;
    try {
      await this.answer(socket, req);
    } finally {
      this.inflight--;
      noteActivity();
      // A call that outlived its client's connection decides idleness once it is done.
      this.checkIdle();
    }
  }

  private async answer(socket: ByteStream, req: RequestFrame): Promise<void> {
    let res: ResponseFrame;
    try {
      const codecs = MachineServiceCodec as Record<string, { input: { decode(b: Uint8Array): unknown }; output: { encode(m: never): Uint8Array } }>;
      const method = Object.hasOwn(codecs, req.method) ? codecs[req.method] : undefined;
      const handler = req.method === "events" ? (r: unknown) => this.eventsToFifo(r as EventsRequest) : (this.agent.handlers as unknown as Record<string, (r: unknown) => unknown>)[req.method];
      if (!method || !handler) throw new ArcboxError("not_implemented", `agent method ${req.method} is not implemented`);
      const out = await handler(method.input.decode(req.body));
      res = { k: "res", id: req.id, body: method.output.encode(out as never) };
    } catch (err) {
      const e = err instanceof ArcboxError ? err : new ArcboxError("internal", err instanceof Error ? err.message : String(err));
      if (e.code === "internal") this.log.error(`${req.method} failed`, { error: e.message });
      res = { k: "res", id: req.id, error: { code: e.code, message: e.message } };
    }
    if (!socket.destroyed) socket.write(encodeFrame(res));
  }

  /**
   * MachineService.Events naming a FIFO: this agent writes its events there itself from
   * now on (or stops, with `unsubscribe`), so they keep flowing while vmm is gone. A
   * reader that goes away is dropped at the next event (EPIPE).
   */
  private eventsToFifo(req: EventsRequest): object {
    if (!this.eventFifos) throw new ArcboxError("not_implemented", "this agent writes no events FIFO (in a VM, vmm does)");
    if (!req.fifo) throw new ArcboxError("invalid_argument", "an events subscription to the agent names a FIFO");
    if (req.unsubscribe) this.eventFifos.unsubscribe(req.fifo);
    else this.eventFifos.subscribe(req.fifo);
    return {};
  }

  private onShim(socket: Socket): void {
    noteActivity();
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => (text += d));
    socket.on("error", () => {});
    socket.on("end", () => {
      for (const line of text.split("\n")) {
        const [word, kind, id, ...status] = line.split(" ");
        if (word !== "exit" || !kind || !id) continue;
        Promise.resolve(this.agent.onShimExit(kind, id, parseExitFields(status)))
          .catch((err) => this.log.error("exit notification", { id, error: err }))
          // The last container's exit may leave an agent nobody talks to with nothing to watch.
          .finally(() => this.checkIdle());
      }
    });
  }
}
