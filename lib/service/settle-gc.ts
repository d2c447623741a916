/**
 * One full garbage collection once a process has had no new request for SETTLE_MS.
 *
 * Long-lived processes run without Bun's idle GC timer (BUN_GC_TIMER_DISABLE, which
 * would wake them every 1-30 s at rest), and JSC collects only as allocation demands:
 * after a burst of work (pulls, `docker run`s) the garbage it left stays resident for
 * as long as the process idles, 3-5 MB in apid and imaged. This collects it once,
 * and gives the freed pages back, after the burst: one timer, re-armed by each request,
 * none at rest.
 */
const SETTLE_MS = 5_000;

let timer: ReturnType<typeof setTimeout> | undefined;

function collect(): void {
  timer = undefined;
  Bun.gc(true);
}

/** Notes a request (or other work): the collection waits until SETTLE_MS after the last. */
export function noteActivity(): void {
  clearTimeout(timer);
  timer = setTimeout(collect, SETTLE_MS);
  // Never what keeps a process alive.
  timer.unref();
}
