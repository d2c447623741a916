/**
 * Docker API: /build/prune. ArcBox has no build cache (no builder), so there is never
 * anything to delete; the filters are still checked, as Docker checks them, so a
 * script with a bad filter learns it here rather than on an engine that has a cache.
 */
import { Hono } from "hono";
import { ArcboxError } from "../../../../lib/errors.ts";
import type { DockerEnv } from "../app.ts";
import { FILTERS, parseFilters } from "../filters.ts";

const SIZE_PARAMS = ["keep-storage", "reserved-space", "max-used-space", "min-free-space"];

export function buildRoutes() {
  const app = new Hono<DockerEnv>();

  app.post("/build/prune", (c) => {
    const f = parseFilters(c.req.query("filters"), FILTERS.buildPrune);
    if (f.until !== undefined && f["unused-for"] !== undefined) throw new ArcboxError("invalid_argument", "conflicting filters: \"until\" and \"unused-for\"");
    for (const p of SIZE_PARAMS) {
      const v = c.req.query(p);
      if (v !== undefined && v !== "" && !/^\d+$/.test(v)) throw new ArcboxError("invalid_argument", `${p} is in bytes and expects an integer, got "${v}"`);
    }
    return c.json({ CachesDeleted: null, SpaceReclaimed: 0 });
  });

  return app;
}
