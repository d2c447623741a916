/** Docker API: /networks endpoints. */
import { Hono } from "hono";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";

export function networksRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  return app;
}
