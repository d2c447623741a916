/**
 * Turns a callback-style producer (emit events, then resolve or throw) into the async
 * generator a Connect server-streaming handler returns. A failure after the first
 * event becomes a final event with `error`; a failure before any event is thrown, so
 * the caller can answer with a plain HTTP error as Docker does.
 */
import { toConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { Emit, ProgressEvent } from "../core/progress.ts";

const KEEPALIVE_MS = 4000;

export async function* streamEvents<T>(signal: AbortSignal, run: (emit: Emit) => Promise<unknown>, wrap: (e: ProgressEvent) => T): AsyncGenerator<T> {
  const queue: ProgressEvent[] = [];
  let wake: (() => void) | undefined;
  let finished = false;
  let failure: unknown;
  let emitted = 0;
  let last: ProgressEvent | undefined;
  const emit: Emit = (e) => {
    queue.push(e);
    wake?.();
  };
  void run(emit).then(
    () => {
      finished = true;
      wake?.();
    },
    (err) => {
      failure = err ?? new Error("failed");
      finished = true;
      wake?.();
    },
  );
  while (!signal.aborted) {
    if (queue.length > 0) {
      const e = queue.shift()!;
      emitted++;
      last = e;
      yield wrap(e);
      continue;
    }
    if (finished) break;
    // The Connect socket cuts a response idle for 10 s: repeat the last event meanwhile.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = await new Promise<boolean>((r) => {
      wake = () => r(false);
      timer = setTimeout(() => r(true), KEEPALIVE_MS);
    });
    clearTimeout(timer);
    wake = undefined;
    if (idle && last) yield wrap(last);
  }
  if (failure !== undefined) {
    // Streaming errors escape the server's unary interceptor: map them here.
    if (emitted === 0) throw toConnectError(failure);
    yield wrap({ error: failure instanceof Error ? failure.message : String(failure) });
  }
}
