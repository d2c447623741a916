/**
 * Docker API: /images endpoints and /auth. Thin translation to imaged's
 * ImageService; progress streams become Docker's JSON lines, and byte uploads
 * (load, import) are forwarded to imaged's own upload socket as they arrive.
 */
import { Hono } from "hono";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { dockerError, errorResponse } from "../errors.ts";
import { FILTERS } from "../filters.ts";
import { historyJson, imageInspectJson, imageSummaryJson } from "../images/image-json.ts";
import { progressResponse } from "../images/progress-stream.ts";
import { imageFilters, queryBool } from "../images/query.ts";
import { authConfigSchema, registryAuthFromHeader, toRegistryAuth } from "../images/registry-auth.ts";
import { parseSearchQuery, searchResultsJson } from "../images/search.ts";
import { forwardUpload } from "../images/upload.ts";
import { releaseEngineLayers } from "../../core/engine-layers.ts";

/** Image names contain slashes, so `:name` spans segments. */
const NAME = ":name{.+}";

export function imagesRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const images = () => deps.clients.images;

  app.post("/images/create", async (c) => {
    const q = c.req.query();
    if (q.fromSrc !== undefined) {
      const params = new URLSearchParams({ repo: q.repo ?? "", tag: q.tag ?? "", message: q.message ?? "", platform: q.platform ?? "" });
      for (const ch of c.req.queries("changes") ?? []) params.append("changes", ch);
      if (q.fromSrc !== "-") return dockerError(501, "importing from a URL is not supported: pass the tarball on stdin (fromSrc=-)");
      return forwardUpload(deps, `/import?${params}`, c.req.raw);
    }
    const fromImage = q.fromImage;
    if (!fromImage) return dockerError(400, "fromImage or fromSrc is required");
    let reference = fromImage;
    if (q.tag) reference = q.tag.startsWith("sha256:") ? `${fromImage}@${q.tag}` : `${fromImage}:${q.tag}`;
    // No tag anywhere means every tag (docker pull -a); the CLI sends tag=latest otherwise.
    const allTags = !q.tag && !/[:@][^/]*$/.test(fromImage);
    const auth = registryAuthFromHeader(c.req.header("X-Registry-Auth"));
    const stream = images().pull({ reference, platform: q.platform ?? "", auth, allTags });
    return progressResponse(stream);
  });

  app.get("/images/json", async (c) => {
    const res = await images().list({ filters: imageFilters(c.req.query("filters"), FILTERS.imageList), all: queryBool(c.req.query("all")) });
    return c.json(res.items.map((i) => imageSummaryJson(i, c.env.apiVersion)));
  });

  app.get("/images/search", async (c) => {
    const q = parseSearchQuery(c.req.query());
    const auth = registryAuthFromHeader(c.req.header("X-Registry-Auth"));
    const res = await images().search({ term: q.term, limit: q.limit, auth });
    return c.json(searchResultsJson(res.results, q.filters));
  });

  app.post("/images/load", (c) => forwardUpload(deps, `/load?quiet=${queryBool(c.req.query("quiet")) ? 1 : 0}`, c.req.raw));

  app.post("/images/prune", async (c) => {
    const res = await images().prune({ filters: imageFilters(c.req.query("filters"), FILTERS.imagePrune) });
    await releaseEngineLayers(deps.clients, res.items);
    const deleted = res.items.map((i) => (i.untagged ? { Untagged: i.untagged } : { Deleted: i.deleted }));
    return c.json({ ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: Number(res.spaceReclaimed) });
  });

  const save = (references: string[]) => {
    const stream = images().save({ references });
    return saveResponse(stream);
  };
  app.get("/images/get", (c) => save(c.req.queries("names") ?? []));
  app.get(`/images/${NAME}/get`, (c) => save([c.req.param("name")]));

  app.get(`/images/${NAME}/json`, async (c) => c.json(imageInspectJson(await images().inspect({ reference: c.req.param("name") }), c.env.apiVersion)));

  app.get(`/images/${NAME}/history`, async (c) => {
    const res = await images().history({ reference: c.req.param("name") });
    return c.json(res.entries.map(historyJson));
  });

  app.post(`/images/${NAME}/tag`, async (c) => {
    const repo = c.req.query("repo");
    if (!repo) return dockerError(400, "repository name (repo) is required");
    const tag = c.req.query("tag");
    await images().tag({ source: c.req.param("name"), target: tag ? `${repo}:${tag}` : repo });
    return new Response(null, { status: 201 });
  });

  app.post(`/images/${NAME}/push`, async (c) => {
    const tag = c.req.query("tag");
    const name = c.req.param("name");
    const auth = registryAuthFromHeader(c.req.header("X-Registry-Auth"));
    return progressResponse(images().push({ reference: tag ? `${name}:${tag}` : name, auth }));
  });

  app.delete(`/images/${NAME}`, async (c) => {
    const res = await images().remove({ reference: c.req.param("name"), force: queryBool(c.req.query("force")), noPrune: queryBool(c.req.query("noprune")) });
    await releaseEngineLayers(deps.clients, res.items);
    return c.json(res.items.map((i) => (i.untagged ? { Untagged: i.untagged } : { Deleted: i.deleted })));
  });

  app.post("/auth", async (c) => {
    const body = authConfigSchema.safeParse(await c.req.json().catch(() => undefined));
    if (!body.success) return dockerError(400, "invalid auth configuration");
    try {
      const res = await images().login({ auth: toRegistryAuth(body.data) });
      return c.json({ Status: res.status, IdentityToken: res.identityToken });
    } catch (err) {
      const r = errorResponse(err);
      // Docker answers bad credentials with 401.
      return r.status === 403 ? dockerError(401, ((await r.json()) as { message: string }).message) : r;
    }
  });

  return app;
}

/** The docker-archive tar, streamed from imaged; errors before the first byte are JSON. */
async function saveResponse(stream: AsyncIterable<{ data: Uint8Array }>): Promise<Response> {
  const it = stream[Symbol.asyncIterator]();
  let first: IteratorResult<{ data: Uint8Array }>;
  try {
    first = await it.next();
  } catch (err) {
    return errorResponse(err);
  }
  let pending: IteratorResult<{ data: Uint8Array }> | undefined = first;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const r = pending ?? (await it.next());
        pending = undefined;
        if (r.done) controller.close();
        else controller.enqueue(r.value.data);
      } catch (err) {
        controller.error(err);
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
  return new Response(body, { headers: { "Content-Type": "application/x-tar" } });
}
