/**
 * One supervised service process: start, readiness (a "ready" message on its channel),
 * restart with backoff when it dies unexpectedly, and an orderly stop (SIGTERM, then
 * SIGKILL). The channel is a socketpair on the service's fd 3, not Bun's IPC, which
 * wakes both processes every second (lib/service/supervisor-channel.ts).
 */
import { closeSync, writeSync } from "node:fs";
import { socketPair } from "../../../native/libc.ts";
import type { Subprocess } from "bun";
import type { ServiceStateName } from "./service-state.ts";
import { debugSocket, serviceLog, serviceSocket, type ArcboxHome } from "../../../lib/home.ts";
import { openLogFile, type Logger } from "../../../lib/log.ts";
import { noteActivity } from "../../../lib/service/settle-gc.ts";
import type { SupervisorReply } from "../../../lib/service/supervisor-channel.ts";
import { Backoff } from "./backoff.ts";
import type { ServiceSpec } from "./service-table.ts";

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

export interface ServiceSnapshot {
  name: string;
  state: ServiceStateName;
  pid: number;
  restarts: number;
  startedAtUnixMs: number;
  lazy: boolean;
  socket: string;
  debugSocket: string;
  lastExit: string;
}

export class ManagedService {
  state: ServiceStateName;
  private proc: Subprocess | undefined;
  private restarts = 0;
  private startedAt = 0;
  private lastExit = "";
  private readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly backoff = new Backoff();
  private wanted = false;
  /** The process announced an idle exit: it is going away on purpose, not crashing. */
  private idleExiting = false;

  /**
   * `activate` serves a service's own "activate" requests (a lazy service it calls),
   * answered on the same channel.
   */
  constructor(
    readonly spec: ServiceSpec,
    private readonly home: ArcboxHome,
    private readonly log: Logger,
    private readonly activate: (name: string) => Promise<unknown> = () => Promise.reject(new Error("no activation here")),
  ) {
    this.state = spec.lazy ? "idle" : "stopped";
  }

  /** Starts the service if needed and resolves once it reports ready. */
  ensureRunning(): Promise<void> {
    if (this.state === "ready") return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject };
      this.readyWaiters.push(waiter);
      setTimeout(() => {
        const i = this.readyWaiters.indexOf(waiter);
        if (i >= 0) {
          this.readyWaiters.splice(i, 1);
          reject(new Error(`${this.spec.name} did not become ready within ${READY_TIMEOUT_MS / 1000}s (see ${serviceLog(this.home, this.spec.name)})`));
        }
      }, READY_TIMEOUT_MS).unref();
    });
    this.wanted = true;
    // An idle-exiting process still holds its sockets: the next one starts when it is gone.
    if (this.state !== "starting" && this.state !== "backoff" && !this.idleExiting) this.spawn();
    return ready;
  }

  private spawn(): void {
    clearTimeout(this.restartTimer);
    const logFd = openLogFile(serviceLog(this.home, this.spec.name));
    this.state = "starting";
    this.startedAt = Date.now();
    const [ours, theirs] = socketPair();
    try {
      const proc = Bun.spawn([process.execPath, "--smol", this.spec.entry, "--home", this.home.root], {
        stdio: ["ignore", logFd, logFd, theirs],
        // BUN_GC_TIMER_DISABLE: Bun's idle GC timer would wake each service every 1-30 s
        // at rest; JSC still collects as allocation demands.
        env: { ...process.env, ARCBOX_HOME: this.home.root, ARCBOX_SERVICE: this.spec.name, ARCBOX_SUPERVISOR_FD: "3", BUN_GC_TIMER_DISABLE: "1" },
        onExit: (p, code, signal) => this.onExit(p, code, signal),
      });
      this.proc = proc;
      void this.readChannel(proc, ours);
      this.log.info("started service", { service: this.spec.name, pid: proc.pid });
    } catch (err) {
      closeSync(ours);
      throw err;
    } finally {
      closeSync(logFd);
      closeSync(theirs);
    }
  }

  /** Newline-delimited JSON messages from the service, until it closes its end (exits). */
  private async readChannel(proc: Subprocess, fd: number): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const channel = { fd, open: true };
    try {
      for await (const chunk of Bun.file(fd).stream()) {
        buf += decoder.decode(chunk, { stream: true });
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          try {
            this.onMessage(proc, channel, JSON.parse(line));
          } catch {} // not a message: ignore the line
        }
      }
    } catch {
    } finally {
      channel.open = false;
      closeSync(fd);
    }
  }

  private onMessage(proc: Subprocess, channel: { fd: number; open: boolean }, message: unknown): void {
    const type = (message as { type?: string })?.type;
    // A service starting, activating another or going idle: collect after the burst.
    noteActivity();
    if (type === "activate") {
      const { id, name } = message as { id?: unknown; name?: unknown };
      if (typeof id !== "number" || typeof name !== "string") return;
      void this.activate(name).then(
        () => reply(channel, { type: "activated", id }),
        (err: unknown) => reply(channel, { type: "activated", id, error: err instanceof Error ? err.message : String(err) }),
      );
      return;
    }
    if (proc !== this.proc) return;
    if (type === "ready") {
      this.state = "ready";
      for (const w of this.readyWaiters.splice(0)) w.resolve();
    } else if (type === "idle-exit" && this.spec.lazy) {
      this.idleExiting = true;
      this.state = "stopping";
    }
  }

  private onExit(proc: Subprocess, code: number | null, signal: number | string | null): void {
    if (proc !== this.proc) return;
    this.proc = undefined;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    this.lastExit = how;
    if (this.idleExiting) {
      this.idleExiting = false;
      this.state = "idle";
      this.log.info(`service ${this.spec.name} exited while idle; it starts again on its next call`);
      if (this.readyWaiters.length) this.spawn(); // someone asked for it meanwhile
      return;
    }
    if (!this.wanted) {
      this.state = "stopped";
      return;
    }
    const delay = this.backoff.next(Date.now() - this.startedAt);
    this.restarts++;
    this.state = "backoff";
    this.log.error(`service ${this.spec.name} exited unexpectedly (${how}); restarting in ${delay} ms`, { service: this.spec.name, restarts: this.restarts });
    this.restartTimer = setTimeout(() => this.spawn(), delay);
  }

  async stop(): Promise<void> {
    this.wanted = false;
    clearTimeout(this.restartTimer);
    for (const w of this.readyWaiters.splice(0)) w.reject(new Error(`${this.spec.name} is stopping`));
    const proc = this.proc;
    if (!proc) {
      if (this.state !== "idle") this.state = "stopped";
      return;
    }
    this.state = "stopping";
    proc.kill("SIGTERM");
    const killer = setTimeout(() => {
      this.log.warn(`service ${this.spec.name} ignored SIGTERM for ${STOP_GRACE_MS / 1000}s; killing it`);
      proc.kill("SIGKILL");
    }, STOP_GRACE_MS);
    const code = await proc.exited;
    clearTimeout(killer);
    this.state = "stopped";
    this.log.info("stopped service", { service: this.spec.name, exit: proc.signalCode ? `signal ${proc.signalCode}` : `code ${code}` });
  }

  snapshot(): ServiceSnapshot {
    return {
      name: this.spec.name,
      state: this.state,
      pid: this.proc?.pid ?? 0,
      restarts: this.restarts,
      startedAtUnixMs: this.proc ? this.startedAt : 0,
      lazy: this.spec.lazy,
      socket: serviceSocket(this.home, this.spec.name),
      debugSocket: debugSocket(this.home, this.spec.name),
      lastExit: this.lastExit,
    };
  }
}

/**
 * Answers on a service's channel, if it is still open: once the service has exited the
 * fd is closed and its number may already belong to another file.
 */
function reply(channel: { fd: number; open: boolean }, msg: SupervisorReply): void {
  if (!channel.open) return;
  try {
    writeSync(channel.fd, `${JSON.stringify(msg)}\n`);
  } catch {} // the service is gone: nobody waits for the answer
}
