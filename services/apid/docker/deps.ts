/** What the Docker API handlers need from the rest of apid. */
import type { ArcboxHome } from "../../../lib/home.ts";
import type { MetricsRegistry } from "../../../lib/debug/metrics.ts";
import type { ServiceClients } from "../../../lib/service/clients.ts";

export interface DockerApiDeps {
  home: ArcboxHome;
  clients: ServiceClients;
  metrics: MetricsRegistry;
  /** Stable identifier of this engine, kept across restarts. */
  engineId: string;
  /** Counts of containers by state, from apid's container records. */
  containerCounts(): { total: number; running: number; paused: number; stopped: number };
}
