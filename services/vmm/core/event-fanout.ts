/**
 * Runtime events from the agents to every open MachineService.Events stream. Each
 * subscriber gets its own queue; nothing is kept when nobody listens.
 */
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";

/**
 * Bun.serve closes a connection after 10 s without traffic (its default idleTimeout,
 * set in lib/rpc/unix-socket.ts), which would cut a quiet event stream: an open stream
 * sends an empty message after this long without events. Only while someone listens.
 */
const HEARTBEAT_MS = 5_000;

export class EventFanout {
  private subscribers = new Set<(e: RuntimeEvent) => void>();

  publish(e: RuntimeEvent): void {
    for (const s of this.subscribers) s(e);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /**
   * Yields events until `signal` aborts. The first value is `undefined`, yielded once the
   * subscription is registered: a caller can tell the stream is live before any event.
   * `undefined` is also yielded after HEARTBEAT_MS without events (see below).
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
        if (queue.length === 0) {
          let timer: ReturnType<typeof setTimeout> | undefined;
          const timedOut = await new Promise<boolean>((r) => {
            wake = () => r(false);
            timer = setTimeout(() => r(true), HEARTBEAT_MS);
          });
          clearTimeout(timer);
          wake = undefined;
          if (timedOut) yield undefined;
        }
        while (queue.length) yield queue.shift()!;
      }
    } finally {
      this.subscribers.delete(push);
      signal.removeEventListener("abort", onAbort);
    }
  }
}
