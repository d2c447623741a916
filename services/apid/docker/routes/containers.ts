/** Docker API: /containers endpoints. */
import { Hono } from "hono";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";

export function containersRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  return app;
}
