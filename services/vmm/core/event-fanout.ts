/**
 * Runtime events from the agents to every open MachineService.Events stream, and to
 * every subscribed FIFO (EventsRequest.fifo: apid's subscription, which must not hold
 * a connection open while the daemon idles). Each stream subscriber gets its own
 * queue; a FIFO's FileSink queues what the pipe cannot take yet. Nothing is kept when
 * nobody listens.
 */
import { toBinary } from "@bufbuild/protobuf";
import { encodeFrame } from "../../../guest/protocol/frames.ts";
import { FifoSubscribers } from "../../../lib/ipc/fifo-subscribers.ts";
import { RuntimeEventSchema, type RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";

export class EventFanout {
  private subscribers = new Set<(e: RuntimeEvent) => void>();
  private readonly fifos: FifoSubscribers;

  /** FIFO subscriptions must name a FIFO under `fifoDir` (the daemon's home). */
  constructor(fifoDir: string) {
    this.fifos = new FifoSubscribers(fifoDir);
  }

  publish(e: RuntimeEvent): void {
    for (const s of this.subscribers) s(e);
    if (this.fifos.size === 0) return;
    this.fifos.write(encodeFrame({ k: "evt", body: toBinary(RuntimeEventSchema, e) }));
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
   * of the same FIFO. Its reader must be open already; anything but a FIFO under the
   * home is refused (vmm must never write into a file someone names).
   */
  subscribeFifo(path: string): void {
    this.fifos.subscribe(path);
  }

  unsubscribeFifo(path: string): void {
    this.fifos.unsubscribe(path);
  }

  /** Drops FIFO subscriptions whose reader has gone without unsubscribing (it died). */
  pruneFifos(): void {
    this.fifos.prune();
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
