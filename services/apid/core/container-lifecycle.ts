/**
 * The container lifecycle as an explicit state machine: the one place where a record's
 * status changes. Statuses are Docker's (created, running, paused, restarting, exited,
 * removing, dead); a record leaves the machine when it is deleted.
 *
 * Every transition does three things, in this order, here and nowhere else:
 *   1. persist the record (so what clients learn next is on disk first),
 *   2. emit its Docker event(s),
 *   3. wake the waiters it releases (`wait`, `wait?condition=removed`, logs -f, ...).
 * A transition whose persistence fails emits nothing and wakes nobody (the store puts
 * the record back as persisted), except an exit, which must be reported even on a full
 * disk: the runtime keeps the other copy of the exit status (docs/architecture.md).
 *
 * The orchestration (what the runtime, network and storage services are asked, and
 * when) stays in ContainerManager; it asks this module for each status change.
 */
import type { Logger } from "../../../lib/log.ts";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord, ContainerState, ContainerStatus, NetworkInfo } from "./container-record.ts";

export const ZERO_TIME = "0001-01-01T00:00:00Z";

export interface ExitResult {
  code: number;
  error: string;
}

/** The statuses each status may go to (a status may always be updated in place). */
export const TRANSITIONS: { readonly [S in ContainerStatus]: readonly ContainerStatus[] } = {
  created: ["running", "removing"],
  running: ["paused", "exited", "created", "removing"],
  paused: ["running", "exited", "removing"],
  restarting: ["running", "exited", "removing"],
  exited: ["running", "restarting", "removing"],
  removing: ["dead"],
  dead: ["removing"],
};

export function canTransition(from: ContainerStatus, to: ContainerStatus): boolean {
  return from === to || TRANSITIONS[from].includes(to);
}

/** What happened to the container; each maps to one status change. */
export type Transition =
  /** A new record (initial state `created`); persisted with the end of its pending create. */
  | { kind: "create" }
  /** The runtime started the process (from created, exited, or a policy restart). */
  | { kind: "start"; pid: number; startedAt: string; network: NetworkInfo | null }
  /** A start failed: a policy restart falls back to exited, otherwise the status stays. */
  | { kind: "start-failed"; error: string; exitCode: number }
  /** The process exited (runtime event, or found gone by reconcile). */
  | { kind: "exit"; exitCode: number; oomKilled: boolean; finishedAt: string; network: NetworkInfo | null }
  | { kind: "pause" }
  | { kind: "unpause" }
  /** A paused container thawed so that it receives a signal (no event: Docker emits none). */
  | { kind: "thaw" }
  /** A restart policy will start the container again after its delay. */
  | { kind: "restart-scheduled" }
  /** A scheduled restart was cancelled (stop, kill, rm) or lost (daemon restart). */
  | { kind: "restart-cancelled" }
  /** The runtime says the container runs or is paused (daemon start, lost event stream). */
  | { kind: "reconcile"; status: "running" | "paused"; pid: number }
  /** Removal begun (write-ahead: what to finish if it is interrupted). */
  | { kind: "remove"; volumes: boolean }
  /** Removal could not finish; the next rm or recovery finishes it. */
  | { kind: "remove-failed"; error: string }
  /** Removal finished: the record is deleted. */
  | { kind: "removed" };

/** The status a transition leads to from `from`, or the one it rejects. */
export function targetStatus(from: ContainerStatus, t: Transition): ContainerStatus {
  switch (t.kind) {
    case "create":
      return "created";
    case "start":
      return "running";
    case "start-failed":
      return from === "restarting" ? "exited" : from === "running" ? "created" : from;
    case "exit":
      return "exited";
    case "pause":
      return "paused";
    case "unpause":
    case "thaw":
      return "running";
    case "restart-scheduled":
      return "restarting";
    case "restart-cancelled":
      return "exited";
    case "reconcile":
      return t.status;
    case "remove":
      return "removing";
    case "remove-failed":
      return "dead";
    case "removed":
      return "removing";
  }
}

/** Where records go: the container store (SQLite, mirrored in memory). */
export interface RecordStore {
  save(rec: ContainerRecord): void;
  /** The record of a create in flight, saved with the end of its write-ahead row. */
  commitCreate(rec: ContainerRecord): void;
  delete(id: string): void;
}

/** Where events go: the engine's event stream. */
export interface EventSink {
  publish(type: "container" | "network", action: string, id: string, attributes?: Record<string, string>): unknown;
}

/**
 * How a transition's record is persisted: `required` throws (nothing is emitted, the
 * store reverted the record); `try` logs a failure and still emits (the record is
 * the persisted one again); `keep` logs it and keeps the new state in memory (an exit).
 */
export type Persistence = "required" | "try" | "keep";

const DEFAULT_PERSISTENCE: { readonly [K in Transition["kind"]]: Persistence } = {
  create: "required",
  start: "required",
  "start-failed": "try",
  exit: "keep",
  pause: "required",
  unpause: "required",
  thaw: "try",
  "restart-scheduled": "required",
  "restart-cancelled": "required",
  reconcile: "try",
  remove: "required",
  "remove-failed": "try",
  removed: "required",
};

interface Waiters {
  exit: ((r: ExitResult) => void)[];
  removed: ((r: ExitResult) => void)[];
}

export class ContainerLifecycle {
  private readonly waiters = new Map<string, Waiters>();

  constructor(
    private readonly store: RecordStore,
    private readonly events: EventSink,
    private readonly log: Pick<Logger, "warn">,
  ) {}

  /**
   * Applies `t` to `rec`: checks it is allowed, updates the state, persists, emits,
   * wakes. Returns whether the record was persisted (false only for `try`/`keep`).
   */
  apply(rec: ContainerRecord, t: Transition, persistence: Persistence = DEFAULT_PERSISTENCE[t.kind]): boolean {
    const from = rec.state.status;
    const to = targetStatus(from, t);
    if (t.kind !== "create" && !canTransition(from, to)) throw new ContainerError("internal", `container ${rec.id}: invalid state transition ${from} -> ${to} (${t.kind})`);
    const next = this.nextState(rec.state, to, t);
    rec.state = next;
    if (t.kind === "remove") rec.removal = { volumes: t.volumes || !!rec.removal?.volumes };

    // 1. persist
    let persisted = true;
    try {
      if (t.kind === "create") this.store.commitCreate(rec);
      else if (t.kind === "removed") this.store.delete(rec.id);
      else this.store.save(rec);
    } catch (err) {
      if (persistence === "required") throw err;
      persisted = false;
      this.log.warn(`could not persist the ${t.kind} of a container`, { id: rec.id, error: err });
      if (persistence === "keep") rec.state = next;
    }
    // 2. emit
    this.emitFor(rec, t);
    // 3. wake
    this.wakeFor(rec, t);
    return persisted;
  }

  private nextState(s: ContainerState, to: ContainerStatus, t: Transition): ContainerState {
    switch (t.kind) {
      case "create":
        return { status: "created", pid: 0, exitCode: 0, error: "", oomKilled: false, startedAt: ZERO_TIME, finishedAt: ZERO_TIME };
      case "start":
        return { status: to, pid: t.pid, exitCode: 0, error: "", oomKilled: false, startedAt: t.startedAt, finishedAt: ZERO_TIME };
      case "start-failed":
        return { ...s, status: to, pid: 0, error: t.error, exitCode: t.exitCode };
      case "exit":
        return { ...s, status: to, pid: 0, exitCode: t.exitCode, oomKilled: t.oomKilled, finishedAt: t.finishedAt };
      case "reconcile":
        return { ...s, status: to, pid: t.pid };
      case "remove-failed":
        return { ...s, status: to, error: t.error };
      default:
        return { ...s, status: to };
    }
  }

  /** Publishes a container event with Docker's attributes (labels, image, name). */
  emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    this.events.publish("container", action, rec.id, { ...(rec.config.Labels ?? {}), image: rec.imageRef, name: rec.name.slice(1), ...extra });
  }

  private emitFor(rec: ContainerRecord, t: Transition): void {
    switch (t.kind) {
      case "create":
        this.emit(rec, "create");
        return;
      case "start":
        for (const e of t.network?.endpoints ?? []) this.events.publish("network", "connect", e.networkId, { container: rec.id, name: e.networkName, type: "bridge" });
        this.emit(rec, "start");
        return;
      case "exit": {
        const ranMs = Date.parse(t.finishedAt) - Date.parse(rec.state.startedAt);
        if (t.oomKilled) this.emit(rec, "oom");
        this.emit(rec, "die", { exitCode: String(t.exitCode), execDuration: String(Math.max(0, Math.round(ranMs / 1000))) });
        for (const e of t.network?.endpoints ?? []) this.events.publish("network", "disconnect", e.networkId, { container: rec.id, name: e.networkName, type: "bridge" });
        return;
      }
      case "pause":
        this.emit(rec, "pause");
        return;
      case "unpause":
        this.emit(rec, "unpause");
        return;
      case "removed":
        this.emit(rec, "destroy");
        return;
      default:
        return;
    }
  }

  private wakeFor(rec: ContainerRecord, t: Transition): void {
    const w = this.waiters.get(rec.id);
    if (!w) return;
    if (t.kind === "exit") {
      const result = { code: t.exitCode, error: "" };
      for (const f of w.exit.splice(0)) f(result);
    } else if (t.kind === "removed") {
      const result = { code: rec.state.exitCode, error: "" };
      for (const f of w.removed.splice(0)) f(result);
      for (const f of w.exit.splice(0)) f(result);
      this.waiters.delete(rec.id);
    }
  }

  private waitersOf(id: string): Waiters {
    let w = this.waiters.get(id);
    if (!w) this.waiters.set(id, (w = { exit: [], removed: [] }));
    return w;
  }

  /**
   * Resolves at the container's next exit (or its removal). An aborted `signal` drops
   * the waiter (a client that went away holds nothing); the promise then never settles.
   */
  waitExit(id: string, signal?: AbortSignal): Promise<ExitResult> {
    return this.wait(id, "exit", signal);
  }

  /** Resolves when the container is removed (or its removal has failed for good). */
  waitRemoved(id: string, signal?: AbortSignal): Promise<ExitResult> {
    return this.wait(id, "removed", signal);
  }

  private wait(id: string, kind: keyof Waiters, signal: AbortSignal | undefined): Promise<ExitResult> {
    return new Promise((resolve) => {
      if (signal?.aborted) return;
      const w = this.waitersOf(id);
      w[kind].push(resolve);
      signal?.addEventListener(
        "abort",
        () => {
          const i = w[kind].indexOf(resolve);
          if (i >= 0) w[kind].splice(i, 1);
          if (!w.exit.length && !w.removed.length && this.waiters.get(id) === w) this.waiters.delete(id);
        },
        { once: true },
      );
    });
  }

  /** An --rm container that could not be removed: `docker run --rm` waits for "removed", tell it why not. */
  failRemoval(id: string, result: ExitResult): void {
    for (const f of this.waiters.get(id)?.removed.splice(0) ?? []) f(result);
  }

  /** Waiters registered, for the debug socket's state and for tests. */
  waiterCount(): number {
    let n = 0;
    for (const w of this.waiters.values()) n += w.exit.length + w.removed.length;
    return n;
  }
}
