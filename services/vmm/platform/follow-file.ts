/**
 * Streams a file's bytes, then (with follow) what is appended to it, woken by inotify
 * (fs.watch), never by a timer. Ends when `signal` aborts or `stop` resolves (after
 * sending what was written up to then).
 */
import { closeSync, existsSync, openSync, readSync, watch } from "node:fs";

const CHUNK = 64 * 1024;

export async function* followFile(path: string, opts: { follow: boolean; signal: AbortSignal; stop?: Promise<unknown> }): AsyncGenerator<Uint8Array> {
  if (!existsSync(path)) return;
  const fd = openSync(path, "r");
  let pos = 0;
  const drain = function* (): Generator<Uint8Array> {
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK);
      const n = readSync(fd, buf, 0, CHUNK, pos);
      if (n <= 0) return;
      pos += n;
      yield buf.subarray(0, n);
    }
  };
  try {
    yield* drain();
    if (!opts.follow) return;
    let wake: (() => void) | undefined;
    let changed = false;
    let stopped = false;
    const poke = () => {
      changed = true;
      wake?.();
    };
    const watcher = watch(path, poke);
    opts.signal.addEventListener("abort", poke);
    void opts.stop?.then(() => {
      stopped = true;
      poke();
    });
    try {
      while (!opts.signal.aborted) {
        if (!changed) await new Promise<void>((r) => (wake = r));
        wake = undefined;
        changed = false;
        yield* drain();
        if (stopped) return;
      }
    } finally {
      watcher.close();
      opts.signal.removeEventListener("abort", poke);
    }
  } finally {
    closeSync(fd);
  }
}
