/**
 * The common main of every ArcBox service process: Connect socket, debug socket,
 * readiness notice to the supervisor, and an orderly stop on SIGTERM/SIGINT.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type * as HealthPb from "../../proto/gen/arcbox/common/v1/health_pb.ts";
import { MetricsRegistry } from "../debug/metrics.ts";
import { serveDebug } from "../debug/server.ts";
import { arcboxHome, debugSocket, ensureHome, serviceDataDir, serviceSocket, type ArcboxHome } from "../home.ts";
import { createLogger, type Logger } from "../log.ts";
import { serveConnectLazy } from "../rpc/lazy-server.ts";
import { ARCBOX_VERSION } from "../version.ts";
import { ServiceClients } from "./clients.ts";
import { parseHomeFlag } from "./argv.ts";
import { ActivityTracker } from "./activity.ts";
import { noteActivity } from "./settle-gc.ts";
import { onSupervisorExit, sendToSupervisor, underSupervisor } from "./supervisor-channel.ts";

export interface ServiceContext {
  name: string;
  home: ArcboxHome;
  dataDir: string;
  log: Logger;
  metrics: MetricsRegistry;
  clients: ServiceClients;
}

export interface RunningService {
  /** The service's Connect routes, set up at start. */
  routes?: (router: ConnectRouter) => void;
  /** Or: loaded (their descriptors and code) on the socket's first request. */
  loadRoutes?: () => Promise<(router: ConnectRouter) => void>;
  state: () => unknown | Promise<unknown>;
  stop?: () => Promise<void>;
  /**
   * For lazily started services: whether the process may exit now because nothing
   * needs it (no work in progress, nothing held for containers). The supervisor starts
   * it again on the next call. Absent: the service stays up.
   */
  idle?: () => boolean | Promise<boolean>;
  /**
   * How long, without requests, before `idle()` is asked, when ARCBOX_IDLE_EXIT_SECONDS
   * does not say (default 300): shorter for a service that is cheap to start again.
   */
  idleExitSeconds?: number;
}

/** How long a lazy service waits without requests before it asks `idle()` (ARCBOX_IDLE_EXIT_SECONDS, 0 = never). */
function idleExitMs(serviceDefault = 300): number {
  const v = Number(process.env.ARCBOX_IDLE_EXIT_SECONDS ?? serviceDefault);
  return Number.isFinite(v) && v > 0 ? v * 1000 : 0;
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
  // Idle exit only under a supervisor, which restarts the service on its next call.
  const idleMs = service.idle && underSupervisor ? idleExitMs(service.idleExitSeconds) : 0;
  const activity = idleMs ? new ActivityTracker(idleMs, () => void exitIfIdle()) : undefined;
  const withHealth = (routes: (router: ConnectRouter) => void) => (router: ConnectRouter) => {
    // Required here, not imported: a service whose routes load lazily (apid) builds no
    // descriptor until its socket is first called (clients.ts says why that matters).
    const { HealthService } = require("../../proto/gen/arcbox/common/v1/health_pb.ts") as typeof HealthPb;
    router.service(HealthService, {
      check: () => ({ service: def.name, version: ARCBOX_VERSION, pid: process.pid, uptimeSeconds: (Date.now() - started) / 1000 }),
    });
    routes(router);
  };
  const track = activity ? (h: (req: Request) => Promise<Response>) => activity.wrap(h) : undefined;
  const { routes = () => {}, loadRoutes } = service;
  const connect = loadRoutes
    ? serveConnectLazy(serviceSocket(home, def.name), async () => withHealth(await loadRoutes()), track)
    : (await import("../rpc/server.ts")).serveConnect(serviceSocket(home, def.name), withHealth(routes), track);
  const debug = serveDebug(debugSocket(home, def.name), { service: def.name, version: ARCBOX_VERSION, metrics: ctx.metrics, state: service.state });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    activity?.stop();
    log.info("stopping", { signal });
    await Promise.allSettled([connect.stop(), debug.stop()]);
    await service.stop?.();
    process.exit(0);
  };
  // Tell the supervisor first (it then holds new activations until we are gone), then
  // stop listening; a request that raced in is finished by `stop` before exiting.
  async function exitIfIdle() {
    if (stopping || activity?.busy) return;
    const idle = await service.idle?.();
    // Not idle: no new timer (that would be polling). Whatever makes the service idle
    // arrives as a call (Detach, Unmount, a stream ending), and its end re-arms the timer.
    if (!idle || activity?.busy || stopping) return;
    log.info("idle: exiting until the next call", { idleSeconds: idleMs / 1000 });
    sendToSupervisor({ type: "idle-exit" });
    await stop("idle");
  }
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // Under a supervisor, its death closes the channel: stop rather than linger unreachable.
  onSupervisorExit(() => void stop("supervisor exited"));

  log.info("ready", { pid: process.pid, socket: serviceSocket(home, def.name) });
  sendToSupervisor({ type: "ready" });
  // Start-up is a burst too: settle after it even if no request follows (settle-gc.ts).
  noteActivity();
}
