/**
 * The supervisor (`arcbox daemon`): holds the home lock, starts apid (and the lazy
 * services on demand), restarts what dies, serves SupervisorService on
 * run/supervisor.sock, and stops everything in order on SIGTERM/SIGINT.
 *
 * Start-up order is tuned for cold start: apid is spawned first; the supervisor's own
 * Connect and debug handlers load only when first asked.
 */
import { closeSync, readdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_MODE_ENV, resolveEngineMode } from "../../lib/engine-mode.ts";
import { ArcboxError } from "../../lib/errors.ts";
import { arcboxHome, debugSocket, ensureHome, restrictHomePermissions, supervisorLock, supervisorSocket, type ArcboxHome } from "../../lib/home.ts";
import { createLogger } from "../../lib/log.ts";
import { ARCBOX_VERSION } from "../../lib/version.ts";
import { DaemonLock } from "./core/daemon-lock.ts";
import { SERVICE_TABLE } from "./core/service-table.ts";
import { Supervisor } from "./core/supervisor.ts";
import { lazyHandler, listenUnix } from "../../lib/rpc/unix-socket.ts";

/**
 * Tells `arcbox start` (which passed us a pipe as ARCBOX_READY_FD) that we are up
 * ("ready"), or that another daemon already holds this home ("already-running").
 */
function notifyReady(word: "ready" | "already-running" = "ready"): boolean {
  const fd = Number(process.env.ARCBOX_READY_FD);
  if (!Number.isInteger(fd) || fd < 3) return false;
  try {
    writeSync(fd, `${word}\n`);
    closeSync(fd);
  } catch {}
  delete process.env.ARCBOX_READY_FD; // not for the services we spawn later
  return true;
}

export async function runDaemon(homeDir: string): Promise<number> {
  const home = arcboxHome(homeDir);
  ensureHome(home);
  const log = createLogger("supervisor");
  let lock: DaemonLock;
  try {
    lock = DaemonLock.acquire(supervisorLock(home), home.root);
  } catch (err) {
    if (err instanceof ArcboxError) {
      // `arcbox start` on a home whose daemon runs: not a failure for the caller.
      if (notifyReady("already-running")) return 0;
      process.stderr.write(`arcbox: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  restrictHomePermissions(home);
  // The engine mode (host or vm) is decided once here and inherited by every service.
  try {
    process.env[ENGINE_MODE_ENV] = await resolveEngineMode(home.root);
  } catch (err) {
    process.stderr.write(`arcbox: ${(err as Error).message}\n`);
    lock.release();
    return 1;
  }
  const vmMode = process.env[ENGINE_MODE_ENV] === "vm";
  log.info("starting", { pid: process.pid, home: home.root, version: ARCBOX_VERSION, engine: process.env[ENGINE_MODE_ENV] });

  const sup = new Supervisor(SERVICE_TABLE, home, log);
  const eager = sup.startEager();

  // The control and debug sockets listen at once, but their Connect, protobuf and metrics
  // code loads on their first request: an idle supervisor that nobody asked anything
  // keeps none of it in memory (~5 MB less anonymous memory). Services reach the
  // supervisor over their channel, not this socket (lib/service/supervisor-channel.ts).
  const control = listenUnix(
    supervisorSocket(home),
    lazyHandler(async () => {
      const [{ connectHandler }, { supervisorRoutes }] = await Promise.all([import("../../lib/rpc/server.ts"), import("./server/supervisor-service.ts")]);
      return connectHandler(supervisorRoutes(sup, home, () => void shutdown("shutdown request")));
    }),
  );
  const debug = listenUnix(
    debugSocket(home, "supervisor"),
    lazyHandler(async () => {
      const [{ debugHandler }, { MetricsRegistry }] = await Promise.all([import("../../lib/debug/server.ts"), import("../../lib/debug/metrics.ts")]);
      const metrics = new MetricsRegistry("arcbox_supervisor");
      metrics.gauge("services_running", "Services with a live process.", () => sup.services.filter((s) => s.snapshot().pid > 0).length);
      return debugHandler({
        service: "supervisor",
        version: ARCBOX_VERSION,
        metrics,
        state: () => ({ pid: process.pid, home: home.root, services: sup.services.map((s) => s.snapshot()) }),
      });
    }),
  );
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
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));

  try {
    await eager;
  } catch (err) {
    log.error("eager services failed to start", { error: err });
    await shutdown("start failure");
    return 1;
  }
  log.info("ready");
  notifyReady();
  // VMs outlive the daemon: with machines on record, vmm comes back at once to adopt and
  // watch them (crash reasons, their network) instead of on the next call. It idle-exits
  // again if none runs.
  // In VM mode vmm boots the engine machine at once (the first docker run need not wait).
  if (vmMode || hasMachines(home)) void sup.activate("vmm").catch((err) => log.warn("cannot start vmm for existing machines", { error: err }));
  // The engine machine's boot needs netd (its NIC) and fsd (its VirtioFS shares) before
  // qemu starts, and keeps both running: start them beside vmm rather than after it.
  if (vmMode) for (const name of ["netd", "fsd"]) void sup.activate(name).catch((err) => log.warn(`cannot start ${name} for the engine machine`, { error: err }));
  return new Promise<number>(() => {}); // runs until a signal or a Shutdown call
}

function hasMachines(home: ArcboxHome): boolean {
  try {
    return readdirSync(join(home.data, "vmm", "machines")).length > 0;
  } catch {
    return false;
  }
}
