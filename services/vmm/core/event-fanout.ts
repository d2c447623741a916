/**
 * Runtime events from the agents to every open MachineService.Events stream. Each
 * subscriber gets its own queue; nothing is kept when nobody listens.
 */
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";

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
