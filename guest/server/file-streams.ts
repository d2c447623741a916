/**
 * Files streams (VM mode): a container-files operation (guest/core/rootfs-files.ts) run
 * for the host over the agent stream, like a socket stream (socket-streams.ts): fd 0 in
 * is the helper's stdin (a tar to unpack), fd 1 and fd 2 out its stdout and stderr, and
 * a final `close` frame carries its exit status. Flow control: when the link's buffer
 * is full the helper's output is paused until it drains, and when the helper's stdin
 * is full the host is asked to pause (`pause`/`resume` frames), so a large archive is
 * never held in memory on either side.
 */
import { spawn, type ChildProcess } from "node:child_process";
import type { ByteStream } from "../../lib/ipc/fifo-stream.ts";
import type { Logger } from "../../lib/log.ts";
import { GuestError } from "../core/guest-error.ts";
import type * as RootfsFiles from "../core/rootfs-files.ts";
import type { AgentLayout } from "../core/layout.ts";
import { encodeFrame } from "../protocol/frames.ts";
import type { FilesFrame, IoFrame } from "../protocol/messages.ts";
import type { RecordStore } from "../storage/records.ts";

/** A link that reports backpressure (net.Socket does; the host's FIFO stream need not). */
type Link = ByteStream & { once?(event: "drain", fn: () => void): unknown; writableLength?: number };

/**
 * How much may wait in a buffer before its source is paused. Large enough that a
 * pause/resume round trip over the link (milliseconds under TCG) is rare: pausing at
 * every full pipe (64 KiB) made a 64 MiB copy take minutes.
 */
export const FILES_HIGH_WATER = 1 << 20;
/**
 * Output bytes the agent may have sent and the host not yet acknowledged (`ack`
 * frames): bounds what a stalled host buffers, however slowly a `pause` would cross
 * a loaded TCG link (16 MiB did before it took effect).
 */
export const FILES_WINDOW = 4 << 20;

interface Stream {
  owner: Link;
  child?: ChildProcess;
  /** Input that arrived before the helper was spawned. */
  early: IoFrame[];
  ended?: boolean;
  /** The host was asked to pause the input. */
  inputPaused?: boolean;
  /** The helper's output waits: for the host (`pause`), or for the link to drain. */
  hostPaused?: boolean;
  linkFull?: boolean;
  /** Output bytes sent, and acknowledged by the host; more than FILES_WINDOW apart pauses the output. */
  sentOut: number;
  ackedOut: number;
  windowFull?: boolean;
}

/**
 * rootfs-files.ts (and zod, for its request schema) is loaded on the first files stream:
 * evaluating zod's schemas took 0.4-0.7 s of the agent's start in a TCG guest without
 * the JIT, and docker cp, export, diff and commit are never on the start path.
 */
let rootfsFiles: Promise<typeof RootfsFiles> | undefined;
const loadRootfsFiles = () => (rootfsFiles ??= import("../core/rootfs-files.ts"));

export class FileStreams {
  private readonly streams = new Map<string, Stream>();

  constructor(
    private readonly layout: AgentLayout,
    private readonly records: RecordStore,
    private readonly log: Logger,
  ) {}

  open(owner: Link, f: FilesFrame): void {
    const sid = String(f.sid);
    const send = (frame: IoFrame): boolean => (owner.destroyed ? false : owner.write(encodeFrame(frame)) !== false);
    const finish = (code: number, message?: string) => {
      if (message) send({ k: "io", sid, fd: 2, data: Buffer.from(message) });
      if (this.streams.get(sid)?.owner === owner) this.streams.delete(sid);
      send({ k: "io", sid, fd: 1, close: true, code });
    };
    if (!f.sid || typeof f.sid !== "string" || this.streams.has(sid)) return void finish(2, "bad files stream id");
    const stream: Stream = { owner, early: [], sentOut: 0, ackedOut: 0 };
    this.streams.set(sid, stream);
    void (async () => {
      const { FilesRequestSchema, prepareFilesOp } = await loadRootfsFiles();
      const parsed = FilesRequestSchema.safeParse(f.req);
      if (!parsed.success) return finish(2, `bad files request: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      let run: RootfsFiles.FilesRun;
      try {
        run = await prepareFilesOp(parsed.data, this.layout, this.records);
      } catch (err) {
        // The answer line apid reads, as the helper writes its own errors.
        const error = err instanceof GuestError ? err.code : "internal";
        send({ k: "io", sid, fd: 1, data: Buffer.from(`${JSON.stringify({ error, message: err instanceof Error ? err.message : String(err) })}\n`) });
        return finish(1);
      }
      if ("output" in run) {
        if (run.output) send({ k: "io", sid, fd: 1, data: Buffer.from(run.output) });
        return finish(run.code);
      }
      const release = run.release;
      if (stream.ended) {
        // The host hung up before the helper started.
        this.streams.delete(sid);
        return void (await release());
      }
      const child = spawn(run.argv[0]!, run.argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
      stream.child = child;
      const pipeOut = (fd: 1 | 2, from: NodeJS.ReadableStream & { pause(): unknown; resume(): unknown }) => {
        from.on("data", (data: Buffer) => {
          send({ k: "io", sid, fd, data });
          stream.sentOut += data.length;
          if (stream.sentOut - stream.ackedOut > FILES_WINDOW && !stream.windowFull) {
            stream.windowFull = true;
            child.stdout!.pause();
            child.stderr!.pause();
          }
          if (owner.once && !stream.linkFull && (owner.writableLength ?? 0) > FILES_HIGH_WATER) {
            stream.linkFull = true;
            from.pause();
            owner.once("drain", () => {
              stream.linkFull = false;
              if (!stream.hostPaused && !stream.windowFull) from.resume();
            });
          }
        });
      };
      pipeOut(1, child.stdout!);
      pipeOut(2, child.stderr!);
      child.stdin!.on("error", () => {}); // EPIPE: the helper stopped reading; its answer says why
      child.stdin!.on("drain", () => {
        if (!stream.inputPaused) return;
        stream.inputPaused = false;
        send({ k: "io", sid, fd: 0, resume: true });
      });
      let stdoutDone = false;
      let exitCode: number | undefined;
      const done = () => {
        if (!stdoutDone || exitCode === undefined) return;
        void release().finally(() => finish(exitCode!));
      };
      child.stdout!.on("end", () => {
        stdoutDone = true;
        done();
      });
      child.on("error", (err) => {
        this.log.error("files helper did not start", { error: err });
        stdoutDone = true;
        exitCode = 127;
        done();
      });
      child.on("close", (code, signal) => {
        stdoutDone = true;
        exitCode = code ?? (signal ? 128 + 9 : 1);
        done();
      });
      for (const e of stream.early.splice(0)) this.input(e);
    })();
  }

  /** Input for a files stream; false when `f` is not one's. */
  input(f: IoFrame): boolean {
    const s = this.streams.get(f.sid);
    if (!s) return false;
    if (!s.child) {
      if (f.close) s.ended = true;
      s.early.push(f);
      return true;
    }
    const stdin = s.child.stdin!;
    if (f.close) {
      this.streams.delete(f.sid);
      s.child.kill("SIGKILL");
    } else if (f.ack !== undefined) {
      s.ackedOut = Math.max(s.ackedOut, f.ack);
      if (s.windowFull && s.sentOut - s.ackedOut <= FILES_WINDOW / 2) {
        s.windowFull = false;
        if (!s.linkFull && !s.hostPaused) s.child.stdout!.resume();
        if (!s.linkFull) s.child.stderr!.resume();
      }
    } else if (f.pause) {
      s.hostPaused = true;
      s.child.stdout!.pause();
    } else if (f.resume) {
      s.hostPaused = false;
      if (!s.linkFull && !s.windowFull) s.child.stdout!.resume();
    } else if (f.eof) stdin.end();
    else if (f.data && !stdin.destroyed) {
      stdin.write(f.data);
      // The helper reads slower than the host sends: the host stops reading its client.
      if (!s.inputPaused && stdin.writableLength > FILES_HIGH_WATER && !s.owner.destroyed) {
        s.inputPaused = true;
        s.owner.write(encodeFrame({ k: "io", sid: f.sid, fd: 0, pause: true }));
      }
    }
    return true;
  }

  /** The host connection went away: its operations end. */
  dropOwner(owner: ByteStream): void {
    for (const [sid, s] of this.streams) {
      if (s.owner !== owner) continue;
      this.streams.delete(sid);
      s.ended = true;
      s.child?.kill("SIGKILL");
    }
  }
}
