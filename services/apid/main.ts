/**
 * apid: the public face of ArcBox. Serves the Docker Engine API on run/docker.sock and
 * ArcBox's ContainerService on run/apid.sock; owns container records.
 *
 * Start order: records are loaded, the Docker socket opens, then containers are
 * recovered (reconciled with the runtime, restart policies applied) in the background
 * so a slow runtime never delays the API.
 */
import { ContainerService } from "../../proto/gen/arcbox/containers/v1/containers_pb.ts";
import { dockerSocket } from "../../lib/home.ts";
import { runService } from "../../lib/service/run-service.ts";
import { ContainerManager } from "./core/container-manager.ts";
import { containerServiceImpl } from "./core/container-service.ts";
import { loadEngineId } from "./core/engine-id.ts";
import { EventsBus } from "./core/events-bus.ts";
import { ExecManager } from "./core/exec-manager.ts";
import { BuildService } from "./build/route.ts";
import { HealthMonitor } from "./core/health-monitor.ts";
import { ContainerStore } from "./core/storage/container-store.ts";
import { createDockerApp } from "./docker/app.ts";
import { HijackRouter } from "./docker/hijack.ts";
import { registerExecHijack } from "./docker/routes/exec.ts";
import { serveDocker } from "./docker/server.ts";
import { hijackAttach } from "./docker/streams/attach.ts";

await runService({
  name: "apid",
  async start(ctx) {
    const store = new ContainerStore(ctx.dataDir);
    const events = new EventsBus();
    const containers = new ContainerManager(store, events, ctx.clients, ctx.dataDir, ctx.log);
    const execs = new ExecManager(containers, ctx.clients);
    const health = new HealthMonitor(containers, execs);
    const deps = {
      home: ctx.home,
      clients: ctx.clients,
      metrics: ctx.metrics,
      engineId: loadEngineId(ctx.dataDir),
      containerCounts: () => containers.counts(),
      containers,
      execs,
      health,
      events,
      builds: new BuildService({ backends: ctx.clients, containers, dataDir: ctx.dataDir, log: ctx.log }),
    };
    const app = createDockerApp(deps);
    const hijack = new HijackRouter();
    hijack.on("POST", "/containers/:id/attach", hijackAttach(containers));
    registerExecHijack(hijack, deps);
    const docker = await serveDocker(dockerSocket(ctx.home), app, hijack, ctx.log);
    ctx.metrics.gauge("containers", "Container records.", () => store.all().length);
    void containers
      .recover()
      .then(() => health.armRunning())
      .catch((err) => ctx.log.error("container recovery failed", { error: err }));
    return {
      routes: (router) => router.service(ContainerService, containerServiceImpl(containers, execs)),
      state: () => ({ dockerSocket: dockerSocket(ctx.home), containers: containers.counts(), eventListeners: events.listenerCount }),
      stop: async () => {
        await docker.stop();
        await containers.shutdown();
        deps.builds.close();
        store.close();
      },
    };
  },
});
