/** What the Docker API handlers need from the rest of apid. */
import type { ArcboxHome } from "../../../lib/home.ts";
import type { MetricsRegistry } from "../../../lib/debug/metrics.ts";
import type { ServiceClients } from "../../../lib/service/clients.ts";
import type { ContainerBackend, ContainerRuntimeQueries, ExecBackend } from "../core/container-backends.ts";
import type { EventsBus } from "../core/events-bus.ts";
import type { LazyBuilds } from "../build/lazy.ts";
import type { HealthMonitor } from "../core/health-monitor.ts";

export interface DockerApiDeps {
  home: ArcboxHome;
  clients: ServiceClients;
  metrics: MetricsRegistry;
  /** Stable identifier of this engine, kept across restarts. */
  engineId: string;
  /** Counts of containers by state, from apid's container records. */
  containerCounts(): { total: number; running: number; paused: number; stopped: number };
  /** Container records and their lifecycle (the /containers router's backend). */
  containers: ContainerBackend;
  /** Resize, top, stats and commit: what the runtime answers about a container. */
  queries: ContainerRuntimeQueries;
  execs: ExecBackend;
  /** Health checks of running containers (State.Health, ps status and filter). */
  health: HealthMonitor;
  /** The engine's event stream (`docker events`); any route may publish. */
  events: EventsBus;
  /** docker build (classic builder) and its cache. */
  builds: LazyBuilds;
}
