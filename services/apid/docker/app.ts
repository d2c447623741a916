/**
 * The Docker Engine API as a hono app: one route module per resource, Docker-style
 * JSON errors for everything (unknown endpoints included), and the negotiated API
 * version available to handlers as `c.env.apiVersion`.
 */
import { Hono } from "hono";
import { dockerError, errorResponse } from "./errors.ts";
import type { DockerApiDeps } from "./deps.ts";
import { containersRoutes } from "./routes/containers.ts";
import { distributionRoutes } from "./routes/distribution.ts";
import { eventsRoutes, resourceEvents } from "./routes/events.ts";
import { execRoutes } from "./routes/exec.ts";
import { imagesRoutes } from "./routes/images.ts";
import { networksRoutes } from "./routes/networks.ts";
import { pluginsRoutes } from "./routes/plugins.ts";
import { swarmRoutes } from "./routes/swarm.ts";
import { systemRoutes } from "./routes/system.ts";
import { volumesRoutes } from "./routes/volumes.ts";
import { buildRoutes } from "../build/lazy.ts";

export interface DockerEnv {
  Bindings: { apiVersion: string };
}

export type DockerApp = Hono<DockerEnv>;

export function createDockerApp(deps: DockerApiDeps): DockerApp {
  const app = new Hono<DockerEnv>();
  const requests = deps.metrics.counter("docker_requests_total", "Docker API requests served, by method and status.");
  app.use("*", async (c, next) => {
    await next();
    requests.inc({ method: c.req.method, status: String(c.res.status) });
  });
  app.use("*", resourceEvents(deps.events));
  app.onError((err) => errorResponse(err));
  app.notFound((c) => dockerError(404, `page not found: ${c.req.method} ${new URL(c.req.url).pathname}`));
  app.route("/", systemRoutes(deps));
  app.route("/", imagesRoutes(deps));
  app.route("/", containersRoutes(deps));
  app.route("/", execRoutes(deps));
  app.route("/", eventsRoutes(deps));
  app.route("/", networksRoutes(deps));
  app.route("/", volumesRoutes(deps));
  app.route("/", swarmRoutes(deps));
  app.route("/", pluginsRoutes(deps));
  app.route("/", distributionRoutes(deps));
  app.route("/", buildRoutes(deps.builds));
  return app;
}
