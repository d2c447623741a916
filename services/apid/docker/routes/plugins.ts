/**
 * Docker API: /plugins, answered as a Docker Engine with no managed plugins answers:
 * an empty list, and "not found" for any named plugin. Installing one (pull, create,
 * and the privileges query that precedes a pull) is refused with a 501 that says why:
 * ArcBox's drivers are built in, and managed plugins are runc containers speaking
 * Docker's plugin protocol, which ArcBox does not host.
 */
import { Hono } from "hono";
import { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";
import { withDefaultTag } from "../../core/container-ids.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { FILTERS, parseFilters } from "../filters.ts";
import { jsonBody } from "../networks/json-body.ts";

/** Plugin names carry a repository path and a tag (`vieux/sshfs:latest`). */
const NAME = ":name{.+}";

const notFound = (name: string): never => {
  throw new ArcboxError("not_found", `plugin ${JSON.stringify(name)} not found`);
};

const unsupported = (): never => {
  throw new ArcboxError("not_implemented", "ArcBox does not support managed plugins: its volume, network and log drivers are built in");
};

/** `remote`/`name` are image references; dockerd refuses an empty one before anything else. */
const requireReference = (ref: string | undefined, prefix = ""): string => {
  if (!ref) throw new ArcboxError("invalid_argument", `${prefix}invalid reference format`);
  return ref;
};

const privilegesBody = z.array(z.unknown()).nullish();
const settingsBody = z.array(z.string()).nullish();

export function pluginsRoutes(_deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();

  app.get("/plugins", (c) => {
    parseFilters(c.req.query("filters"), FILTERS.pluginList);
    return c.json([]);
  });

  app.get("/plugins/privileges", (c) => {
    requireReference(c.req.query("remote"));
    return unsupported();
  });
  app.post("/plugins/pull", async (c) => {
    requireReference(c.req.query("remote"));
    await jsonBody(c.req.raw, privilegesBody);
    return unsupported();
  });
  app.post("/plugins/create", (c) => {
    // The body is a plugin rootfs tar (a stream endpoint): refused without reading it.
    requireReference(c.req.query("name"), "failed to parse reference : ");
    return unsupported();
  });

  app.get(`/plugins/${NAME}/json`, (c) => notFound(c.req.param("name")));
  app.delete(`/plugins/${NAME}`, (c) => notFound(c.req.param("name")));
  app.post(`/plugins/${NAME}/enable`, (c) => {
    const timeout = c.req.query("timeout");
    if (timeout !== undefined && !/^-?\d+$/.test(timeout)) throw new ArcboxError("invalid_argument", `strconv.Atoi: parsing ${JSON.stringify(timeout)}: invalid syntax`);
    return notFound(c.req.param("name"));
  });
  app.post(`/plugins/${NAME}/disable`, (c) => notFound(c.req.param("name")));
  app.post(`/plugins/${NAME}/push`, (c) => notFound(c.req.param("name")));
  app.post(`/plugins/${NAME}/upgrade`, async (c) => {
    requireReference(c.req.query("remote"));
    await jsonBody(c.req.raw, privilegesBody);
    return notFound(withDefaultTag(c.req.param("name")));
  });
  app.post(`/plugins/${NAME}/set`, async (c) => {
    await jsonBody(c.req.raw, settingsBody);
    return notFound(c.req.param("name"));
  });

  return app;
}
