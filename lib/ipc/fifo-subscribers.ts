/**
 * Subscribers that read a writer's output through FIFOs they named (apid's runtime
 * events FIFO): the writer opens each FIFO for writing once and writes frames there
 * until the reader goes (EPIPE), unsubscribes, or a new subscription names the same
 * FIFO. Used by vmm (events of VM machines) and by the host's guest agent (its own
 * events, so they reach apid with no vmm in between). Why FIFOs: fifo-stream.ts.
 */
import { closeSync, fstatSync } from "node:fs";
import { ArcboxError } from "../errors.ts";
import { openWriterIfRead } from "./fifo-stream.ts";

interface FifoSubscriber {
  fd: number;
  sink: ReturnType<ReturnType<typeof Bun.file>["writer"]>;
}

export class FifoSubscribers {
  private fifos = new Map<string, FifoSubscriber>();

  /** Only FIFOs under `allowedDir` are accepted (a writer must never write into a file someone names). */
  constructor(private readonly allowedDir: string) {}

  get size(): number {
    return this.fifos.size;
  }

  has(path: string): boolean {
    return this.fifos.has(path);
  }

  /**
   * Writes to the FIFO at `path` from now on, replacing an earlier subscription of it
   * (the new descriptor is open before the old one closes, so its reader never sees
   * end of file in between). Its reader must be open already.
   */
  subscribe(path: string): void {
    if (!path.startsWith(`${this.allowedDir}/`) || path.includes("/../")) throw new ArcboxError("invalid_argument", `events FIFO ${path} is not under ${this.allowedDir}`);
    const fd = openWriterIfRead(path);
    if (fd === undefined) throw new ArcboxError("failed_precondition", `nobody reads the events FIFO ${path}`);
    if (!fstatSync(fd).isFIFO()) {
      closeSync(fd);
      throw new ArcboxError("invalid_argument", `${path} is not a FIFO`);
    }
    const old = this.fifos.get(path);
    if (old) this.drop(path, old);
    this.fifos.set(path, { fd, sink: Bun.file(fd).writer() });
  }

  unsubscribe(path: string): void {
    const sub = this.fifos.get(path);
    if (sub) this.drop(path, sub);
  }

  /** Writes `frame` to every subscriber; one whose reader has gone (EPIPE) is dropped. */
  write(frame: Uint8Array): void {
    for (const [path, sub] of this.fifos) {
      try {
        sub.sink.write(frame);
        // FileSink queues what the pipe cannot take now; a broken pipe surfaces here.
        const flushed = sub.sink.flush();
        if (flushed instanceof Promise) flushed.catch(() => this.drop(path, sub));
      } catch {
        this.drop(path, sub); // EPIPE: the reader closed it (released or died)
      }
    }
  }

  /** Drops subscriptions whose reader has gone without unsubscribing (it died or let go). */
  prune(): void {
    for (const [path, sub] of this.fifos) {
      const probe = openWriterIfRead(path);
      if (probe === undefined) this.drop(path, sub);
      else closeSync(probe);
    }
  }

  close(): void {
    for (const [path, sub] of this.fifos) this.drop(path, sub);
  }

  private drop(path: string, sub: FifoSubscriber): void {
    if (this.fifos.get(path) !== sub) return;
    this.fifos.delete(path);
    try {
      sub.sink.end();
    } catch {}
    try {
      closeSync(sub.fd);
    } catch {}
  }
}
