/**
 * Docker API: the swarm families (/swarm, /services, /tasks, /nodes, /secrets,
 * /configs), answered as a single-node Docker Engine that is not part of a swarm
 * answers them. Clients probe these (teardown code calls `swarm leave`, libraries list
 * services) and tell "no swarm" from a broken daemon by the 503 and its message.
 *
 * Checks that dockerd makes before it looks at the swarm state (request JSON, the
 * `version` of an update, a log stream choice) come first here too, with its wording.
 */
import { Hono } from "hono";
import { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { FILTERS, parseFilters } from "../filters.ts";
import { queryBool } from "../images/query.ts";
import { jsonBody } from "../networks/json-body.ts";

/** dockerd's answer to every swarm call but `leave` on a node outside a swarm. */
export const NOT_A_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
/** dockerd's answer to `swarm leave` on a node outside a swarm. */
export const NOT_IN_A_SWARM = "This node is not part of a swarm";

const notManager = (): never => {
  throw new ArcboxError("unavailable", NOT_A_MANAGER);
};

const anyBody = z.unknown();
const listenBody = z.object({ ListenAddr: z.string().nullish() }).loose();

/** A swarm object update's `version` query: Go's ParseUint, with dockerd's wording per kind. */
function requireVersion(kind: "swarm" | "service" | "node" | "secret" | "config", raw: string | undefined): void {
  const v = raw ?? "";
  const fault = !/^\d+$/.test(v) ? "invalid syntax" : BigInt(v) > 0xffff_ffff_ffff_ffffn ? "value out of range" : undefined;
  if (!fault) return;
  // Secrets and configs say less than the others, in dockerd too.
  if (kind === "secret" || kind === "config") throw new ArcboxError("invalid_argument", `invalid ${kind} version`);
  throw new ArcboxError("invalid_argument", `invalid ${kind} version '${v}': strconv.ParseUint: parsing ${JSON.stringify(v)}: ${fault}`);
}

/** Swarm mode needs a cluster store and an overlay network: not something ArcBox runs. */
function swarmUnsupported(what: "init" | "join"): never {
  throw new ArcboxError("not_implemented", `cannot ${what} a swarm: ArcBox does not support swarm mode (it runs containers on this node only)`);
}

export function swarmRoutes(_deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();

  // --- /swarm
  app.get("/swarm", notManager);
  for (const what of ["init", "join"] as const) {
    app.post(`/swarm/${what}`, async (c) => {
      const b = await jsonBody(c.req.raw, listenBody);
      if (!b.ListenAddr) throw new ArcboxError("invalid_argument", 'invalid ListenAddr "": invalid empty address');
      return swarmUnsupported(what);
    });
  }
  app.post("/swarm/leave", () => {
    throw new ArcboxError("unavailable", NOT_IN_A_SWARM);
  });
  app.post("/swarm/update", async (c) => {
    await jsonBody(c.req.raw, anyBody);
    requireVersion("swarm", c.req.query("version"));
    return notManager();
  });
  app.get("/swarm/unlockkey", notManager);
  app.post("/swarm/unlock", async (c) => {
    await jsonBody(c.req.raw, anyBody);
    return notManager();
  });

  // --- services, tasks, nodes, secrets, configs: lists, inspect, create, update, remove.
  const families = [
    { path: "services", kind: "service", create: true, remove: true, logs: true },
    { path: "tasks", kind: "task", create: false, remove: false, logs: true },
    { path: "nodes", kind: "node", create: false, remove: true, logs: false },
    { path: "secrets", kind: "secret", create: true, remove: true, logs: false },
    { path: "configs", kind: "config", create: true, remove: true, logs: false },
  ] as const;
  for (const f of families) {
    app.get(`/${f.path}`, (c) => {
      parseFilters(c.req.query("filters"), FILTERS.swarmList);
      return notManager();
    });
    app.get(`/${f.path}/:id`, notManager);
    if (f.create) {
      app.post(`/${f.path}/create`, async (c) => {
        await jsonBody(c.req.raw, anyBody);
        return notManager();
      });
    }
    if (f.kind !== "task") {
      app.post(`/${f.path}/:id/update`, async (c) => {
        await jsonBody(c.req.raw, anyBody);
        requireVersion(f.kind, c.req.query("version"));
        return notManager();
      });
    }
    if (f.remove) app.delete(`/${f.path}/:id`, notManager);
    if (f.logs) {
      app.get(`/${f.path}/:id/logs`, (c) => {
        if (!queryBool(c.req.query("stdout")) && !queryBool(c.req.query("stderr"))) throw new ArcboxError("invalid_argument", "Bad parameters: you must choose at least one stream");
        return notManager();
      });
    }
  }

  return app;
}
