/**
 * Runtime events from the agents to every open MachineService.Events stream, and to
 * every subscribed FIFO (EventsRequest.fifo: apid's subscription, which must not hold
 * a connection open while the daemon idles). Each stream subscriber gets its own
 * queue; a FIFO's FileSink queues what the pipe cannot take yet. Nothing is kept when
 * nobody listens.
 */
import { toBinary } from "@bufbuild/protobuf";
import { closeSync, fstatSync } from "node:fs";
import { encodeFrame } from "../../../guest/protocol/frames.ts";
import { openWriterIfRead } from "../../../lib/ipc/fifo-stream.ts";
import { RuntimeEventSchema, type RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { MachineError } from "./machine-error.ts";

interface FifoSubscriber {
  fd: number;
  sink: ReturnType<ReturnType<typeof Bun.file>["writer"]>;
}

export class EventFanout {
  private subscribers = new Set<(e: RuntimeEvent) => void>();
  private fifos = new Map<string, FifoSubscriber>();

  publish(e: RuntimeEvent): void {
    for (const s of this.subscribers) s(e);
    if (this.fifos.size === 0) return;
    const frame = encodeFrame({ k: "evt", body: toBinary(RuntimeEventSchema, e) });
    for (const [path, sub] of this.fifos) {
      try {
        sub.sink.write(frame);
        const flushed = sub.sink.flush();
        if (flushed instanceof Promise) flushed.catch(() => this.dropFifo(path, sub));
      } catch {
        this.dropFifo(path, sub); // EPIPE: the reader closed it (unsubscribed or died)
      }
    }
  }

  get subscriberCount(): number {
    return this.subscribers.size + this.fifos.size;
  }

  /** Open subscriptions by kind, for the debug state. */
  get subscriptions(): { streams: number; fifos: number } {
    return { streams: this.subscribers.size, fifos: this.fifos.size };
  }

  /**
   * Writes events to the FIFO at `path` from now on, replacing an earlier subscription
   * of the same FIFO. Its reader must be open already; anything but a FIFO under
   * `allowedDir` is refused (vmm must never write into a file someone names).
   */
  subscribeFifo(path: string, allowedDir: string): void {
    if (!path.startsWith(`${allowedDir}/`) || path.includes("/../")) throw new MachineError("invalid_argument", `events FIFO ${path} is not under ${allowedDir}`);
    const fd = openWriterIfRead(path);
    if (fd === undefined) throw new MachineError("failed_precondition", `nobody reads the events FIFO ${path}`);
    if (!fstatSync(fd).isFIFO()) {
      closeSync(fd);
      throw new MachineError("invalid_argument", `${path} is not a FIFO`);
    }
    const old = this.fifos.get(path);
    if (old) this.dropFifo(path, old);
    this.fifos.set(path, { fd, sink: Bun.file(fd).writer() });
  }

  unsubscribeFifo(path: string): void {
    const sub = this.fifos.get(path);
    if (sub) this.dropFifo(path, sub);
  }

  /** Drops FIFO subscriptions whose reader has gone without unsubscribing (it died). */
  pruneFifos(): void {
    for (const [path, sub] of this.fifos) {
      const probe = openWriterIfRead(path);
      if (probe === undefined) this.dropFifo(path, sub);
      else closeSync(probe);
    }
  }

  private dropFifo(path: string, sub: FifoSubscriber): void {
    if (this.fifos.get(path) !== sub) return;
    this.fifos.delete(path);
    try {
      sub.sink.end();
    } catch {}
    try {
      closeSync(sub.fd);
    } catch {}
  }

  /**
   * Yields events until `signal` aborts. The first value is `undefined`, yielded once the
   * subscription is registered: a caller can tell the stream is live before any event.
   */
  async *stream(signal: AbortSignal): AsyncGenerator<RuntimeEvent | undefined> {
    const queue: RuntimeEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (e: RuntimeEvent) => {
      queue.push(e);
      wake?.();
    };
    const onAbort = () => wake?.();
    this.subscribers.add(push);
    signal.addEventListener("abort", onAbort);
    try {
      yield undefined;
      while (!signal.aborted) {
        if (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        while (queue.length) yield queue.shift()!;
      }
    } finally {
      this.subscribers.delete(push);
      signal.removeEventListener("abort", onAbort);
    }
  }
}
