/** Docker API: /volumes endpoints, served by fsd. */
import { Hono } from "hono";
import { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";
import { compareVersions } from "../api-version.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { FILTERS, labelMatches, parseFilters } from "../filters.ts";
import { jsonBody } from "../networks/json-body.ts";
import { volumeJson } from "../volumes/volume-json.ts";

const CreateSchema = z
  .object({
    Name: z.string().optional(),
    Driver: z.string().optional(),
    DriverOpts: z.record(z.string(), z.string()).nullish(),
    Labels: z.record(z.string(), z.string()).nullish(),
  })
  .loose();

export function volumesRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const fsd = () => deps.clients.volumes;

  app.get("/volumes", async (c) => {
    const f = parseFilters(c.req.query("filters"), FILTERS.volumeList);
    const dangling = f.dangling;
    const any = (vs: string[] | undefined, pred: (v: string) => boolean) => !vs?.length || vs.some(pred);
    const { volumes } = await fsd().list({});
    const out = volumes
      .filter(
        (v) =>
          any(f.driver, (x) => v.driver === x) &&
          any(f.name, (x) => v.name.includes(x)) &&
          (f.label ?? []).every((x) => labelMatches(v.labels, x)) &&
          !(f["label!"] ?? []).some((x) => labelMatches(v.labels, x)) &&
          (dangling === undefined || dangling === (v.inUseBy.length === 0)),
      )
      .map((v) => volumeJson(v));
    return c.json({ Volumes: out, Warnings: [] });
  });

  app.post("/volumes/create", async (c) => {
    const b = await jsonBody(c.req.raw, CreateSchema);
    const { volume } = await fsd().create({ name: b.Name ?? "", driver: b.Driver ?? "", driverOpts: b.DriverOpts ?? {}, labels: b.Labels ?? {} });
    return c.json(volumeJson(volume!), 201);
  });

  app.post("/volumes/prune", async (c) => {
    // Parsed in full before fsd removes anything: a filter that does not parse is a 400.
    const f = parseFilters(c.req.query("filters"), FILTERS.volumePrune);
    // Before API 1.42 prune removed named volumes too; dockerd keeps that for older
    // clients (docker-py 5 asks for 1.41) by adding all=true.
    const all = f.all ?? compareVersions(c.env.apiVersion, "1.42") < 0;
    const res = await fsd().prune({ labels: f.label ?? [], notLabels: f["label!"] ?? [], all });
    return c.json({ VolumesDeleted: res.deleted, SpaceReclaimed: Number(res.spaceReclaimed) });
  });

  app.get("/volumes/:name", async (c) => {
    const { volume } = await fsd().inspect({ name: c.req.param("name") });
    return c.json(volumeJson(volume!));
  });

  app.put("/volumes/:name", () => {
    throw new ArcboxError("failed_precondition", "volume update is only supported for cluster volumes, which need swarm mode");
  });

  app.delete("/volumes/:name", async (c) => {
    const force = ["1", "true"].includes(c.req.query("force") ?? "");
    await fsd().remove({ name: c.req.param("name"), force });
    return c.body(null, 204);
  });

  return app;
}
