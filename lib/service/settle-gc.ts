/**
 * One full garbage collection, and a shrink of JSC's code and heap, once a process has
 * had no new request for SETTLE_MS.
 *
 * Long-lived processes run without Bun's idle GC timer (BUN_GC_TIMER_DISABLE, which
 * would wake them every 1-30 s at rest), and JSC collects only as allocation demands:
 * after a burst of work (pulls, `docker run`s) the garbage it left stays resident for
 * as long as the process idles, 3-5 MB in apid and imaged. This collects it once,
 * and gives the freed pages back, after the burst: one timer, re-armed by each request,
 * none at rest.
 *
 * `Bun.shrink()` then has JSC drop the bytecode and JIT code of every function not on
 * the stack (module start-up code that never runs again, the paths of the last burst)
 * and collect again: functions called later compile again from their source, which
 * costs a few milliseconds on the next request. Measured with 10 idle containers:
 * apid 28.8 -> 20.2 MB anonymous, vmm 17.2 -> 13.4, imaged 13.9 -> 11.6.
 */
const SETTLE_MS = 5_000;

let timer: ReturnType<typeof setTimeout> | undefined;

function collect(): void {
  timer = undefined;
  Bun.gc(true);
  Bun.shrink();
}

/** Notes a request (or other work): the collection waits until SETTLE_MS after the last. */
export function noteActivity(): void {
  clearTimeout(timer);
  timer = setTimeout(collect, SETTLE_MS);
  // Never what keeps a process alive.
  timer.unref();
}
