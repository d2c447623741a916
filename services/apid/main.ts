/**
 * apid: the public face of ArcBox. Serves the Docker Engine API on run/docker.sock and
 * ArcBox's ContainerService on run/apid.sock; owns container records.
 */
import { ContainerService } from "../../proto/gen/arcbox/containers/v1/containers_pb.ts";
import { dockerSocket } from "../../lib/home.ts";
import { runService } from "../../lib/service/run-service.ts";
import { loadEngineId } from "./core/engine-id.ts";
import { createDockerApp } from "./docker/app.ts";
import { HijackRouter } from "./docker/hijack.ts";
import { serveDocker } from "./docker/server.ts";

await runService({
  name: "apid",
  async start(ctx) {
    const app = createDockerApp({
      home: ctx.home,
      clients: ctx.clients,
      metrics: ctx.metrics,
      engineId: loadEngineId(ctx.dataDir),
      containerCounts: () => ({ total: 0, running: 0, paused: 0, stopped: 0 }),
    });
    const hijack = new HijackRouter();
    const docker = await serveDocker(dockerSocket(ctx.home), app, hijack, ctx.log);
    return {
      routes: (router) => router.service(ContainerService, { list: () => ({ items: [] }) }),
      state: () => ({ dockerSocket: dockerSocket(ctx.home) }),
      stop: () => docker.stop(),
    };
  },
});
