/**
 * Reads a container's json-file log (one `{"log","stream","time"}` object per line, as
 * the runtime's shim writes it) for `docker logs` and attach's `logs=1`: tail, since,
 * until, timestamps, stream selection, and follow (inotify via fs.watch, no polling)
 * until the container stops.
 */
import { closeSync, existsSync, openSync, readSync, fstatSync, watch } from "node:fs";
import { frame, STDERR, STDOUT } from "./stream-frames.ts";

export interface LogOptions {
  stdout: boolean;
  stderr: boolean;
  /** Seconds since the epoch (fractional), or undefined. */
  since?: number;
  until?: number;
  timestamps: boolean;
  /** Number of lines from the end; undefined = all. */
  tail?: number;
  /** Raw output (TTY container) instead of multiplexed frames. */
  raw: boolean;
}

interface Entry {
  log: string;
  stream: string;
  time: string;
}

const encoder = new TextEncoder();

/** Parses Docker's since/until: unix seconds ("1700000000.5"), RFC 3339, or a duration ago ("10m"). */
export function parseLogTime(v: string | null | undefined): number | undefined {
  if (!v) return undefined;
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  const d = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(v);
  if (d) return Date.now() / 1000 - Number(d[1]) * { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }[d[2] as "s"];
  const t = Date.parse(v);
  return Number.isNaN(t) ? Number.NaN : t / 1000;
}

/** Byte offset where the last `n` lines start (reads backwards in chunks). */
function tailOffset(fd: number, size: number, n: number): number {
  if (n <= 0) return size;
  const chunk = Buffer.alloc(64 * 1024);
  let pos = size;
  let newlines = 0;
  // The final newline terminates the last line and does not count.
  let skipFirst = true;
  while (pos > 0) {
    const len = Math.min(chunk.length, pos);
    pos -= len;
    readSync(fd, chunk, 0, len, pos);
    for (let i = len - 1; i >= 0; i--) {
      if (chunk[i] !== 0x0a) {
        skipFirst = false;
        continue;
      }
      if (skipFirst) {
        skipFirst = false;
        continue;
      }
      if (++newlines === n) return pos + i + 1;
    }
  }
  return 0;
}

export class LogReader {
  /** Follow streams (`logs -f`, attach replays do not follow) open now: for the debug state. */
  static followers = 0;

  private partial = "";
  private done = false;

  constructor(
    private readonly path: string,
    private readonly opts: LogOptions,
  ) {}

  private render(line: string): Uint8Array | undefined {
    if (!line) return undefined;
    let e: Entry;
    try {
      e = JSON.parse(line) as Entry;
    } catch {
      return undefined;
    }
    const isErr = e.stream === "stderr";
    if (isErr ? !this.opts.stderr : !this.opts.stdout) return undefined;
    if (this.opts.since !== undefined || this.opts.until !== undefined) {
      const t = Date.parse(e.time) / 1000 + nanosFraction(e.time);
      if (this.opts.since !== undefined && t < this.opts.since) return undefined;
      if (this.opts.until !== undefined && t > this.opts.until) {
        this.done = true;
        return undefined;
      }
    }
    const text = this.opts.timestamps ? `${e.time} ${e.log}` : e.log;
    const bytes = encoder.encode(text);
    return this.opts.raw ? bytes : frame(isErr ? STDERR : STDOUT, bytes);
  }

  private renderChunk(text: string): Uint8Array[] {
    const lines = (this.partial + text).split("\n");
    this.partial = lines.pop()!;
    const out: Uint8Array[] = [];
    for (const l of lines) {
      if (this.done) break;
      const r = this.render(l);
      if (r) out.push(r);
    }
    return out;
  }

  /**
   * Streams the log. With `follow`, keeps reading appended lines until `stopped`
   * resolves (the container exited), then drains what is left. `release` runs once the
   * stream is over, ended or cancelled by the client (which drops its waiters at once).
   *
   * The stream is pulled: one read of the file per pull, so a slow client holds at most
   * about one read's worth in memory, however large the log (the reader waits on the
   * client's backpressure, not the other way round).
   */
  stream(follow: { stopped: Promise<unknown>; release?: () => void } | undefined): ReadableStream<Uint8Array> {
    let fd = -1;
    let offset = 0;
    let watcher: ReturnType<typeof watch> | undefined;
    const buf = Buffer.alloc(256 * 1024);
    /** One read's rendered frames; undefined at the end of the file (for now). */
    const readOnce = (): Uint8Array[] | undefined => {
      if (fd < 0) {
        if (!existsSync(this.path)) return undefined;
        fd = openSync(this.path, "r");
        const size = fstatSync(fd).size;
        offset = this.opts.tail === undefined ? 0 : tailOffset(fd, size, this.opts.tail);
      }
      const n = readSync(fd, buf, 0, buf.length, offset);
      if (n <= 0) return undefined;
      offset += n;
      return this.renderChunk(buf.toString("utf8", 0, n));
    };
    let following = false;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      watcher?.close();
      watcher = undefined;
      if (fd >= 0) closeSync(fd), (fd = -1);
      if (following) (following = false), LogReader.followers--;
      follow?.release?.();
    };
    // Set once the container has stopped: read to the end of the file, then close.
    let stopped = false;
    // Set once the stream is cancelled: a cancelled stream's controller must not be
    // closed again when the container stops later (that throws, and would end apid).
    let cancelled = false;
    /** Wakes a pull that waits at the end of the file (new lines, the stop, a cancel). */
    let wake: (() => void) | undefined;
    const poke = () => wake?.();
    return new ReadableStream<Uint8Array>({
      start: () => {
        if (!follow) return;
        following = true;
        LogReader.followers++;
        const dir = this.path.slice(0, this.path.lastIndexOf("/"));
        // Watch the directory: the file may not exist yet, and is created by the shim.
        watcher = watch(dir, poke);
        const onStop = () => {
          stopped = true;
          poke();
        };
        void follow.stopped.then(onStop, onStop);
      },
      pull: async (controller) => {
        for (;;) {
          if (cancelled) return;
          if (this.done) break; // `until` reached
          let frames: Uint8Array[] | undefined;
          try {
            frames = readOnce();
          } catch {
            break; // the log went away (container removed)
          }
          if (frames) {
            for (const f of frames) controller.enqueue(f);
            if (frames.length > 0) return;
            continue; // only lines this reader skips: read on
          }
          if (!follow || stopped) break;
          // Nothing new yet: wait for the watcher, the stop or a cancel. No await
          // between the read above and this, so no wake-up is missed.
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
        close();
        controller.close();
      },
      cancel: () => {
        cancelled = true;
        close();
        poke();
      },
    });
  }
}

function nanosFraction(time: string): number {
  const m = /\.(\d+)Z$/.exec(time);
  if (!m || m[1]!.length <= 3) return 0;
  return Number(`0.000${m[1]!.slice(3)}`);
}
