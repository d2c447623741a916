/**
 * A byte stream between two long-lived processes over a pair of FIFOs, for links that
 * stay open while the daemon idles (vmm ⇄ host agent, vmm → apid events).
 *
 * Why not a Unix socket: Bun runs a one-second "Date header" timer on its event loop
 * whenever any socket connection is open in the process (its uSockets sweep count is
 * above zero), so a process holding one long-lived connection wakes 60 times a minute
 * forever. FIFOs are read through Bun's file reader and written through a FileSink,
 * outside uSockets: an idle link wakes nobody. (Measured: a node:net or Bun.connect
 * pair wakes each side about once a second; the same pair over FIFOs, never.)
 *
 * Semantics the users rely on: a reader sees end-of-file once every writer has closed
 * (the peer died), and a writer gets EPIPE once every reader has closed. Opening a FIFO
 * for writing with O_NONBLOCK fails with ENXIO while nobody reads it: that is how a
 * client tells that the server is not there. A blocking open waits in Bun's thread
 * pool, not on the event loop, until the other end opens. Bun opens every descriptor
 * close-on-exec, so no child (a shim, runc) ever holds an end and hides a peer's death.
 */
import { EventEmitter } from "node:events";
import { closeSync, constants, lstatSync, open, openSync, rmSync } from "node:fs";
import { mknod, S_IFIFO } from "../../native/fs-ops.ts";

/** Creates the FIFO at `path` (mode 0600) unless one is there; replaces anything else. */
export function ensureFifo(path: string): void {
  try {
    if (lstatSync(path).isFIFO()) return;
    rmSync(path, { force: true });
  } catch {}
  try {
    mknod(path, S_IFIFO | 0o600);
  } catch (err) {
    // EEXIST: the peer made it at the same moment.
    if ((err as { errno?: number }).errno !== 17) throw err;
  }
}

/** open(2) in the thread pool: for a FIFO, resolves once the other end is open too. */
export function openWaiting(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))));
}

/**
 * Opens `path` for writing without blocking; undefined while nobody reads the FIFO
 * (ENXIO). The descriptor is non-blocking, which FileSink needs to apply backpressure.
 */
export function openWriterIfRead(path: string): number | undefined {
  try {
    return openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as { code?: string }).code === "ENXIO") return undefined;
    throw err;
  }
}

/**
 * Opens `path` for reading without blocking. It never fails for want of a writer;
 * reads see end of file until one opens, so open the reader before asking for a writer.
 */
export function openReader(path: string): number {
  return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
}

/**
 * Releases a blocking `openWaiting(path, O_WRONLY)` that nobody will answer, by being
 * its reader for a moment.
 */
export function unblockWriterOpen(path: string): void {
  try {
    closeSync(openReader(path));
  } catch {}
}

/** Releases a blocking `openWaiting(path, O_RDONLY)` by being its writer for a moment. */
export function unblockReaderOpen(path: string): void {
  try {
    closeSync(openSync(path, constants.O_RDWR | constants.O_NONBLOCK));
  } catch {}
}

/**
 * The subset of a node:net Socket that the agent protocol code uses, so a socket or
 * an FdStream can carry it.
 */
export interface ByteStream {
  write(data: Uint8Array | string): unknown;
  destroy(): void;
  readonly destroyed: boolean;
  on(event: "data", listener: (chunk: Buffer) => void): unknown;
  on(event: "close", listener: () => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
}

/**
 * Reads one descriptor and writes another (both owned from now on; both closed when
 * the stream ends). Emits "data" (Buffer), then "close" once: at end-of-file, on a
 * read or write error (EPIPE: the peer is gone), or on destroy().
 */
export class FdStream extends EventEmitter implements ByteStream {
  private readonly sink: ReturnType<ReturnType<typeof Bun.file>["writer"]>;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private closed = false;

  constructor(
    private readonly readFd: number,
    private readonly writeFd: number,
  ) {
    super();
    this.sink = Bun.file(writeFd).writer();
    this.reader = Bun.file(readFd).stream().getReader() as unknown as ReadableStreamDefaultReader<Uint8Array>;
    // Listeners are attached by the caller in this same tick; reading starts after.
    queueMicrotask(() => void this.pump());
  }

  get destroyed(): boolean {
    return this.closed;
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.reader.read();
        if (done || this.closed) break;
        if (value.length) this.emit("data", Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      }
    } catch {}
    this.destroy();
  }

  write(data: Uint8Array | string): boolean {
    if (this.closed) return false;
    try {
      this.sink.write(data);
      // FileSink queues what the pipe cannot take now and writes it when it can; a
      // broken pipe (the reader died) surfaces here.
      const flushed = this.sink.flush();
      if (flushed instanceof Promise) flushed.catch(() => this.destroy());
      return true;
    } catch {
      this.destroy();
      return false;
    }
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.cancel().catch(() => {});
    try {
      this.sink.end();
    } catch {}
    for (const fd of [this.readFd, this.writeFd]) {
      try {
        closeSync(fd);
      } catch {}
    }
    this.emit("close");
  }
}
