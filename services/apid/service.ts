/**
 * apid's second stage (main.ts is the first): the Docker API app behind the already open
 * Docker socket, ArcBox's ContainerService on run/apid.sock, container records.
 *
 * Start order: records are loaded, the Docker app is handed to the socket, then
 * containers are recovered (reconciled with the runtime, restart policies applied) in
 * the background so a slow runtime never delays the API.
 */
import { rootfsHelpers } from "./core/rootfs-helper.ts";
import { dockerSocket, type ArcboxHome } from "../../lib/home.ts";
import { runService } from "../../lib/service/run-service.ts";
import { noteActivity } from "../../lib/service/settle-gc.ts";
import { ContainerManager } from "./core/container-manager.ts";
import { loadEngineId } from "./core/engine-id.ts";
import { EventsBus } from "./core/events-bus.ts";
import { ExecManager } from "./core/exec-manager.ts";
import { ContainerQueries } from "./core/container-queries.ts";
import { LogReader } from "./docker/streams/log-reader.ts";
import { LazyBuilds } from "./build/lazy.ts";
import { HealthMonitor } from "./core/health-monitor.ts";
import { ContainerStore } from "./core/storage/container-store.ts";
import { createDockerApp, type DockerApp } from "./docker/app.ts";
import { HijackRouter } from "./docker/hijack.ts";
import { registerExecHijack } from "./docker/routes/exec.ts";
import type { DockerServer } from "./docker/server.ts";
import { hijackAttach, hijackAttachWs } from "./docker/streams/attach.ts";

/** What the first stage hands over: its open Docker socket, waiting for the full app. */
export interface EarlyDocker {
  home: ArcboxHome;
  server: DockerServer;
  attach(app: DockerApp, hijack: HijackRouter): void;
}

export async function runApid(early: EarlyDocker): Promise<void> {
  await runService(
    {
      name: "apid",
      async start(ctx) {
        const store = new ContainerStore(ctx.dataDir);
        const events = new EventsBus();
        const containers = new ContainerManager(store, events, ctx.clients, ctx.dataDir, ctx.log, rootfsHelpers(ctx.home.run));
        const execs = new ExecManager(containers, ctx.clients);
        const health = new HealthMonitor(containers, events, execs);
        const deps = {
          home: ctx.home,
          clients: ctx.clients,
          metrics: ctx.metrics,
          engineId: loadEngineId(ctx.dataDir),
          containerCounts: () => containers.counts(),
          containers,
          queries: new ContainerQueries(containers, ctx.clients),
          execs,
          health,
          events,
          builds: new LazyBuilds({ backends: ctx.clients, containers, dataDir: ctx.dataDir, log: ctx.log }),
        };
        const app = createDockerApp(deps);
        const hijack = new HijackRouter();
        hijack.on("POST", "/containers/:id/attach", hijackAttach(containers));
        hijack.on("GET", "/containers/:id/attach/ws", hijackAttachWs(containers));
        registerExecHijack(hijack, deps);
        early.attach(app, hijack);
        const docker = early.server;
        ctx.metrics.gauge("containers", "Container records.", () => store.all().length);
        void containers
          .recover()
          .then(() => health.armRunning())
          // Recovery is start-up work: collect after it too (lib/service/settle-gc.ts).
          .then(() => noteActivity())
          .catch((err) => ctx.log.error("container recovery failed", { error: err }));
        return {
          // ContainerService (run/apid.sock, for the CLI): its descriptors (~1.2 MB of
          // heap) load on the first call, not in a daemon nobody asked through it.
          loadRoutes: async () => {
            const [{ ContainerService }, { containerServiceImpl }] = await Promise.all([import("../../proto/gen/arcbox/containers/v1/containers_pb.ts"), import("./core/container-service.ts")]);
            return (router) => router.service(ContainerService, containerServiceImpl(containers, execs));
          },
          state: () => ({
            dockerSocket: dockerSocket(ctx.home),
            containers: containers.counts(),
            eventListeners: events.listenerCount,
            containerWaiters: containers.lifecycle.waiterCount(),
            logFollowers: LogReader.followers,
          }),
          stop: async () => {
            await docker.stop();
            await containers.shutdown();
            await deps.builds.close();
            store.close();
          },
        };
      },
    },
    early.home.root,
  );
}
