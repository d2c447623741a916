/**
 * Subscription to vmm's runtime Events stream (machine "host"). Opened on the first
 * container start (or at daemon start when records say containers are alive), kept
 * while containers may be alive, and re-opened with backoff when it breaks, followed
 * by a reconcile so exits that happened meanwhile are not lost. Idle: no stream.
 *
 * With `eventsFifo`, the events come through that FIFO instead of the stream (an open
 * stream connection would wake apid and vmm every second while containers idle):
 * apid opens its reader and asks vmm for the events there; vmm has the host's guest
 * agent write them itself (so vmm may exit while containers run), or writes them
 * itself for a VM's. apid reads until end of file (the writer is gone: it subscribes
 * again and reconciles). Releasing closes the reader; the writer drops the
 * subscription at its next write.
 */
import { closeSync, openSync } from "node:fs";
import { fromBinary } from "@bufbuild/protobuf";
import { FrameDecoder } from "../../../guest/protocol/frames.ts";
import type { AgentFrame } from "../../../guest/protocol/messages.ts";
import { ensureFifo, FdStream, openReader } from "../../../lib/ipc/fifo-stream.ts";
import type { Logger } from "../../../lib/log.ts";
import type * as MachinesPb from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { Backends } from "./backends.ts";
import { HOST_MACHINE } from "./runtime-spec.ts";

const IDLE_RELEASE_MS = 10_000;

export interface MonitorHooks {
  onEvent(ev: RuntimeEvent): void;
  reconcile(): Promise<void>;
  /** Whether any container may still produce events (else the stream is let go). */
  wanted(): boolean;
}

export class RuntimeMonitor {
  private ready?: Promise<void>;
  private abort?: AbortController;
  private stopped = false;
  private failures = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private idleTimer?: ReturnType<typeof setTimeout>;

  constructor(
    private readonly backends: Backends,
    private readonly log: Logger,
    private readonly hooks: MonitorHooks,
    private readonly eventsFifo?: string,
  ) {}

  /** Resolves once the stream's response has begun, i.e. vmm has our subscription. */
  ensure(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer), (this.idleTimer = undefined);
    if (!this.ready) {
      this.ready = this.open();
      this.ready.catch(() => (this.ready = undefined));
    }
    return this.ready;
  }

  private open(): Promise<void> {
    return this.eventsFifo ? this.openFifo(this.eventsFifo) : this.openStream();
  }

  private async openFifo(path: string): Promise<void> {
    ensureFifo(path);
    // Our reader before the writer opens (a FIFO nobody reads is refused). Read through
    // the same descriptor pair type as the agent link; nothing is written back.
    const readFd = openReader(path);
    const abort = new AbortController();
    this.abort = abort;
    try {
      for await (const _ of this.backends.machines.events({ machine: HOST_MACHINE, fifo: path }, { signal: abort.signal }));
    } catch (err) {
      closeSync(readFd);
      if (this.abort === abort) this.abort = undefined;
      throw fromConnectError(err);
    }
    this.failures = 0;
    // Nothing is written back, and a writer of ours on the FIFO would hide the writer's death
    // (no end of file): the stream's write side is /dev/null.
    const stream = new FdStream(readFd, openSync("/dev/null", "w"));
    const decoder = new FrameDecoder();
    stream.on("data", (chunk) => {
      let frames: unknown[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.log.warn("bad frame on the runtime events FIFO", { error: err });
        stream.destroy();
        return;
      }
      for (const f of frames as AgentFrame[]) if (f.k === "evt") this.hooks.onEvent(fromBinary(runtimeEventSchema(), f.body));
    });
    stream.on("close", () => {
      if (this.abort === abort) {
        this.ready = undefined;
        this.abort = undefined;
      }
      // An agent with no container left exits when nobody talks to it: no news then.
      if (!abort.signal.aborted && this.hooks.wanted()) this.log.warn("runtime events FIFO closed (its writer, the guest agent or vmm, is gone)");
      if (!this.stopped && !abort.signal.aborted) this.scheduleReconnect();
    });
    // Released (or stopping): closing our reader is all it takes. Its writer (the host
    // agent, or vmm for a machine's events) drops the subscription at its next write
    // (EPIPE) or when vmm checks whether it may idle out; asking vmm to unsubscribe
    // would start it again just for that.
    abort.signal.addEventListener("abort", () => stream.destroy(), { once: true });
  }

  private openStream(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const abort = new AbortController();
      this.abort = abort;
      let opened = false;
      const stream = this.backends.machines.events({ machine: HOST_MACHINE }, { signal: abort.signal, onHeader: () => ((opened = true), resolve()) });
      void (async () => {
        try {
          for await (const res of stream) {
            // vmm's first message carries no event: it confirms the subscription.
            if (!opened) (opened = true), resolve();
            this.failures = 0;
            if (res.event) this.hooks.onEvent(res.event);
          }
        } catch (err) {
          if (!opened) return reject(fromConnectError(err));
          if (!abort.signal.aborted) this.log.warn("runtime events stream broke", { error: err });
        }
        if (!opened) return reject(new Error("runtime events stream closed before it opened"));
        if (this.abort === abort) {
          this.ready = undefined;
          this.abort = undefined;
        }
        if (!this.stopped && !abort.signal.aborted) this.scheduleReconnect();
      })();
    });
  }

  private scheduleReconnect(): void {
    if (!this.hooks.wanted() || this.retryTimer) return;
    const delay = Math.min(50 * 2 ** this.failures++, 5_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.ensure()
        .then(() => this.hooks.reconcile())
        .catch((err) => {
          this.log.warn("runtime events reconnect failed", { error: err });
          this.scheduleReconnect();
        });
    }, delay);
  }

  /**
   * Closes the stream once no container can produce events for IDLE_RELEASE_MS (one
   * timer, not a loop): back-to-back `docker run`s keep it, an idle daemon lets it go.
   */
  releaseIfUnwanted(): void {
    if (!this.abort || this.hooks.wanted() || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.releaseNow();
    }, IDLE_RELEASE_MS);
  }

  private releaseNow(): void {
    if (!this.abort || this.hooks.wanted()) return;
    const abort = this.abort;
    // Cleared first, so a start racing with this opens a fresh stream rather than reuse this one.
    this.ready = undefined;
    this.abort = undefined;
    abort.abort();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.abort?.abort();
  }
}

/**
 * machines_pb's descriptors load with the first event, not with apid: the first file
 * descriptor a process builds costs ~3.5 MB of heap (protobuf boots descriptor.proto),
 * and an apid with no container ever sees no event.
 */
function runtimeEventSchema(): typeof MachinesPb.RuntimeEventSchema {
  return (require("../../../proto/gen/arcbox/machines/v1/machines_pb.ts") as typeof MachinesPb).RuntimeEventSchema;
}
