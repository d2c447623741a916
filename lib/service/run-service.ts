/**
 * The common main of every ArcBox service process: Connect socket, debug socket,
 * readiness notice to the supervisor, and an orderly stop on SIGTERM/SIGINT.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import { HealthService } from "../../proto/gen/arcbox/common/v1/health_pb.ts";
import { MetricsRegistry } from "../debug/metrics.ts";
import { serveDebug } from "../debug/server.ts";
import { arcboxHome, debugSocket, ensureHome, serviceDataDir, serviceSocket, type ArcboxHome } from "../home.ts";
import { createLogger, type Logger } from "../log.ts";
import { serveConnect } from "../rpc/server.ts";
import { ARCBOX_VERSION } from "../version.ts";
import { ServiceClients } from "./clients.ts";
import { parseHomeFlag } from "./argv.ts";

export interface ServiceContext {
  name: string;
  home: ArcboxHome;
  dataDir: string;
  log: Logger;
  metrics: MetricsRegistry;
  clients: ServiceClients;
}

export interface RunningService {
  routes: (router: ConnectRouter) => void;
  state: () => unknown | Promise<unknown>;
  stop?: () => Promise<void>;
}

export interface ServiceDefinition {
  name: string;
  start(ctx: ServiceContext): Promise<RunningService>;
}

export async function runService(def: ServiceDefinition, homeDir = parseHomeFlag(process.argv.slice(2))): Promise<void> {
  const home = arcboxHome(homeDir);
  ensureHome(home);
  const log = createLogger(def.name);
  const ctx: ServiceContext = {
    name: def.name,
    home,
    dataDir: serviceDataDir(home, def.name),
    log,
    metrics: new MetricsRegistry(`arcbox_${def.name}`),
    clients: new ServiceClients(home),
  };
  const started = Date.now();
  const service = await def.start(ctx);
  const connect = serveConnect(serviceSocket(home, def.name), (router) => {
    router.service(HealthService, {
      check: () => ({ service: def.name, version: ARCBOX_VERSION, pid: process.pid, uptimeSeconds: (Date.now() - started) / 1000 }),
    });
    service.routes(router);
  });
  const debug = serveDebug(debugSocket(home, def.name), { service: def.name, version: ARCBOX_VERSION, metrics: ctx.metrics, state: service.state });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info("stopping", { signal });
    await Promise.allSettled([connect.stop(), debug.stop()]);
    await service.stop?.();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // Under a supervisor, its death closes the IPC channel: stop rather than linger unreachable.
  if (process.send) process.on("disconnect", () => void stop("supervisor exited"));

  log.info("ready", { pid: process.pid, socket: serviceSocket(home, def.name) });
  process.send?.({ type: "ready" });
}
