/**
 * `arcbox daemon`: holds the home lock, serves SupervisorService on run/supervisor.sock,
 * starts apid (and the lazy services on demand), restarts what dies, and stops
 * everything in order on SIGTERM/SIGINT.
 */
import { rmSync } from "node:fs";
import { MetricsRegistry } from "../../lib/debug/metrics.ts";
import { serveDebug } from "../../lib/debug/server.ts";
import { ArcboxError } from "../../lib/errors.ts";
import { arcboxHome, debugSocket, ensureHome, supervisorLock, supervisorSocket } from "../../lib/home.ts";
import { createLogger } from "../../lib/log.ts";
import { serveConnect } from "../../lib/rpc/server.ts";
import { ARCBOX_VERSION } from "../../lib/version.ts";
import { DaemonLock } from "./core/daemon-lock.ts";
import { SERVICE_TABLE } from "./core/service-table.ts";
import { Supervisor } from "./core/supervisor.ts";
import { supervisorRoutes } from "./server/supervisor-service.ts";

export async function runDaemon(homeDir: string): Promise<number> {
  const home = arcboxHome(homeDir);
  ensureHome(home);
  const log = createLogger("supervisor");
  let lock: DaemonLock;
  try {
    lock = DaemonLock.acquire(supervisorLock(home), home.root);
  } catch (err) {
    if (err instanceof ArcboxError) {
      process.stderr.write(`arcbox: ${err.message}\n`);
      return 1;
    }
    throw err;
  }

  const sup = new Supervisor(SERVICE_TABLE, home, log);
  let exiting = false;
  const shutdown = async (why: string) => {
    if (exiting) return;
    exiting = true;
    log.info("shutting down", { reason: why });
    await sup.shutdown();
    await Promise.allSettled([control.stop(), debug.stop()]);
    lock.release();
    rmSync(supervisorLock(home), { force: true });
    log.info("stopped");
    process.exit(0);
  };

  const control = serveConnect(supervisorSocket(home), supervisorRoutes(sup, home, () => void shutdown("shutdown request")));
  const metrics = new MetricsRegistry("arcbox_supervisor");
  metrics.gauge("services_running", "Services with a live process.", () => sup.services.filter((s) => s.snapshot().pid > 0).length);
  const debug = serveDebug(debugSocket(home, "supervisor"), {
    service: "supervisor",
    version: ARCBOX_VERSION,
    metrics,
    state: () => ({ pid: process.pid, home: home.root, services: sup.services.map((s) => ({ ...s.snapshot(), startedAtUnixMs: Number(s.snapshot().startedAtUnixMs) })) }),
  });
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  log.info("starting", { pid: process.pid, home: home.root, version: ARCBOX_VERSION });
  try {
    await sup.startEager();
  } catch (err) {
    log.error("eager services failed to start", { error: err });
    await shutdown("start failure");
    return 1;
  }
  log.info("ready");
  return new Promise<number>(() => {}); // runs until a signal or a Shutdown call
}
