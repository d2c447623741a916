/**
 * Docker's HEALTHCHECK (daemon/health.go): while a container runs (not paused), a
 * timer per container runs its check through the exec path every Interval (every
 * StartInterval while it is starting within StartPeriod); State.Health keeps the
 * status, the failing streak and the last five results; a change of status is a
 * `health_status: <status>` event. The timer exists only while the container runs,
 * armed and disarmed by the container's own lifecycle events (start, unpause / die,
 * pause, destroy), so an idle engine does no work.
 *
 * Health lives in memory: after a daemon restart a running container's health starts
 * over at "starting" (Docker keeps the last log across daemon restarts).
 */
import type { HealthcheckConfig } from "./create-config.ts";
import type { ContainerEvents, ContainerLookup, ExecBackend } from "./container-backends.ts";
import type { EventsBus } from "./events-bus.ts";
import type { ContainerRecord } from "./container-record.ts";
import type { DockerEvent } from "./events-bus.ts";
import { runProbe, type ProbeResult } from "./health-probe.ts";

export type HealthStatus = "starting" | "healthy" | "unhealthy";

export interface Health {
  Status: HealthStatus;
  FailingStreak: number;
  Log: ProbeResult[];
}

/** Config.Healthcheck as the API carries it: durations in nanoseconds, 0 = default. */
export type HealthConfig = HealthcheckConfig;

const MS = 1_000_000;
const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_START_INTERVAL_MS = 5_000;
const DEFAULT_RETRIES = 3;
const MAX_LOG = 5;

const msOr = (ns: number | null | undefined, fallback: number) => (ns && ns > 0 ? Math.max(1, Math.round(ns / MS)) : fallback);

/** A check is configured (Docker keeps State.Health for it), unless its test is NONE. */
export function healthConfigOf(rec: ContainerRecord): HealthConfig | undefined {
  const hc = rec.config.Healthcheck;
  if (!hc?.Test?.length || hc.Test[0] === "NONE") return undefined;
  return hc;
}

/** The probe's argv (dockerd's getProbe); undefined for a test type Docker does not know. */
export function probeCommand(test: string[]): string[] | undefined {
  if (test[0] === "CMD" && test.length > 1) return test.slice(1);
  if (test[0] === "CMD-SHELL" && test.length > 1) return ["/bin/sh", "-c", test.slice(1).join(" ")];
  return undefined;
}

interface Watch {
  timer?: ReturnType<typeof setTimeout>;
  /** Bumped when the watch stops: a probe that ends after that is not recorded. */
  generation: number;
}

export class HealthMonitor {
  private readonly health = new Map<string, Health>();
  private readonly watches = new Map<string, Watch>();

  constructor(
    private readonly containers: ContainerLookup & ContainerEvents,
    events: Pick<EventsBus, "subscribe">,
    private readonly execs: ExecBackend,
  ) {
    events.subscribe(undefined, (e) => this.onEvent(e));
  }

  /** State.Health of a container with a check, as inspect shows it. */
  of(id: string): Health | undefined {
    return this.health.get(id);
  }

  /** Docker's ps `health` value: none, starting, healthy or unhealthy. */
  statusOf(id: string): HealthStatus | "none" {
    return this.health.get(id)?.Status ?? "none";
  }

  /** Arms the checks of containers already running when apid starts (after recovery). */
  armRunning(): void {
    for (const rec of this.containers.list()) if (rec.state.status === "running") this.begin(rec);
  }

  private onEvent(e: DockerEvent): void {
    if (e.Type !== "container") return;
    const rec = this.containers.find(e.Actor.ID);
    switch (e.Action) {
      case "start":
        if (rec) this.begin(rec);
        break;
      case "unpause":
        if (rec) this.schedule(rec);
        break;
      case "die":
      case "pause":
        this.stop(e.Actor.ID);
        break;
      case "destroy":
        this.stop(e.Actor.ID);
        this.health.delete(e.Actor.ID);
        break;
    }
  }

  /** A (re)start: status back to starting, streak 0, the log kept (as dockerd's initHealthMonitor). */
  private begin(rec: ContainerRecord): void {
    if (!healthConfigOf(rec)) return;
    const h = this.health.get(rec.id);
    if (h) {
      h.Status = "starting";
      h.FailingStreak = 0;
    } else this.health.set(rec.id, { Status: "starting", FailingStreak: 0, Log: [] });
    this.schedule(rec);
  }

  private stop(id: string): void {
    const w = this.watches.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    w.generation++;
    this.watches.delete(id);
  }

  private inStartPeriod(rec: ContainerRecord, hc: HealthConfig, at: number): boolean {
    return this.health.get(rec.id)?.Status === "starting" && at - Date.parse(rec.state.startedAt) < msOr(hc.StartPeriod, 0);
  }

  private schedule(rec: ContainerRecord): void {
    const hc = healthConfigOf(rec);
    const cmd = hc?.Test && probeCommand(hc.Test);
    if (!hc || !cmd) return;
    this.stop(rec.id);
    const w: Watch = { generation: 0 };
    this.watches.set(rec.id, w);
    const next = () => {
      const delay = this.inStartPeriod(rec, hc, Date.now()) ? msOr(hc.StartInterval, DEFAULT_START_INTERVAL_MS) : msOr(hc.Interval, DEFAULT_INTERVAL_MS);
      w.timer = setTimeout(() => void probe(), delay);
    };
    const probe = async () => {
      const gen = w.generation;
      const result = await runProbe(this.execs, rec.id, cmd, msOr(hc.Timeout, DEFAULT_TIMEOUT_MS));
      if (gen !== w.generation || this.watches.get(rec.id) !== w) return;
      this.record(rec, hc, result);
      next();
    };
    next();
  }

  /** dockerd's handleProbeResult. */
  private record(rec: ContainerRecord, hc: HealthConfig, result: ProbeResult): void {
    const h = this.health.get(rec.id);
    if (!h) return;
    const before = h.Status;
    h.Log = [...h.Log, result].slice(-MAX_LOG);
    if (result.ExitCode === 0) {
      h.FailingStreak = 0;
      h.Status = "healthy";
    } else if (!this.inStartPeriod(rec, hc, Date.parse(result.Start))) {
      // Failures within the start period of a container never healthy yet do not count.
      h.FailingStreak++;
      if (h.FailingStreak >= (hc.Retries && hc.Retries > 0 ? hc.Retries : DEFAULT_RETRIES)) h.Status = "unhealthy";
    }
    if (h.Status !== before) this.containers.emit(rec, `health_status: ${h.Status}`);
  }
}
