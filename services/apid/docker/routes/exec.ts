/** Docker API: /containers/{id}/exec and /exec/{id} (start, resize, inspect). */
import { Hono } from "hono";
import { ContainerError } from "../../core/container-error.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import type { HijackRouter } from "../hijack.ts";
import { parseJsonText } from "../json-text.ts";
import { hijackExecStart, plainExecStart } from "../streams/exec-start.ts";

export function execRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const { execs } = deps;

  app.post("/containers/:id/exec", async (c) => {
    const text = await c.req.text();
    const body = text.trim() ? parseJsonText(text) : {};
    return c.json({ Id: execs.create(c.req.param("id"), body) }, 201);
  });

  app.post("/exec/:id/start", async (c) => plainExecStart(execs, c.req.param("id"), await c.req.text()));

  app.post("/exec/:id/resize", async (c) => {
    const h = Number(c.req.query("h") ?? 0);
    const w = Number(c.req.query("w") ?? 0);
    if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0) throw new ContainerError("invalid_argument", "invalid resize dimensions");
    await execs.resize(c.req.param("id"), h, w);
    return c.body(null, 200);
  });

  app.get("/exec/:id/json", (c) => c.json(execs.inspect(c.req.param("id"))));

  return app;
}

/** The upgraded (hijacked) variant of exec start, which docker exec uses. */
export function registerExecHijack(router: HijackRouter, deps: DockerApiDeps): void {
  router.on("POST", "/exec/:id/start", hijackExecStart(deps.execs));
}
