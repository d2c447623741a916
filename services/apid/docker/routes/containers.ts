/** Docker API: /containers endpoints (translation to the ContainerBackend; no logic of its own). */
import { Hono, type Context } from "hono";
import { linkRemoval } from "../../core/legacy-links.ts";
import { ContainerError } from "../../core/container-error.ts";
import { inspectView, summaryView } from "../../core/container-view.ts";
import { containerFilter } from "../../core/list-filters.ts";
import { FILTERS, labelMatches, parseFilters } from "../filters.ts";
import { parseJsonText } from "../json-text.ts";
import { compareVersions } from "../api-version.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { containerSizes } from "../containers/disk-usage.ts";
import { archiveRoutes } from "../streams/archive-routes.ts";
import { streamedAttach } from "../streams/attach.ts";
import { LogReader, parseLogTime } from "../streams/log-reader.ts";
import { statsResponse } from "../streams/stats.ts";

const flag = (v: string | undefined) => v === "1" || v === "true" || v === "True";

async function jsonBody(c: Context<DockerEnv>): Promise<unknown> {
  const text = await c.req.text();
  requireJsonContentType(c.req.header("Content-Type"), text);
  if (!text.trim()) return {};
  return parseJsonText(text);
}

/** Docker's CheckForJSON: a body must be declared application/json (an empty one may omit the header). */
function requireJsonContentType(contentType: string | undefined, body: string): void {
  const ct = contentType ?? "";
  if (ct === "" && body.length === 0) return;
  if (ct.split(";")[0]!.trim().toLowerCase() === "application/json") return;
  throw new ContainerError("invalid_argument", `Content-Type specified (${ct}) must be 'application/json'`);
}

function optionalInt(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === "") return undefined;
  if (!/^-?\d+$/.test(v)) throw new ContainerError("invalid_argument", `invalid value for ${name}: ${v}`);
  return Number(v);
}

/**
 * Engines before API 1.44 (Docker 20.10 to 24) worded the refusal to remove an active
 * container as "You cannot remove a running container <id>. ..." and clients of those
 * versions match on it; newer ones get today's wording.
 */
function removeConflictForVersion(err: unknown, version: string, id: string): unknown {
  if (!(err instanceof ContainerError) || compareVersions(version, "1.44") >= 0) return err;
  const m = /^cannot remove container "[^"]*": container is (running|paused)/.exec(err.message);
  if (!m) return err;
  return new ContainerError(
    "conflict",
    m[1] === "paused"
      ? `You cannot remove a paused container ${id}. Unpause and then stop the container before attempting removal or force remove`
      : `You cannot remove a running container ${id}. Stop the container before attempting removal or force remove`,
  );
}

export function containersRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const { containers, queries, execs, health } = deps;

  app.post("/containers/create", async (c) => {
    const res = await containers.create(await jsonBody(c), c.req.query("name") || undefined);
    return c.json(res, 201);
  });

  app.get("/containers/json", async (c) => {
    const filters = parseFilters(c.req.query("filters"), FILTERS.containerList);
    const all = flag(c.req.query("all"));
    const limit = optionalInt(c.req.query("limit"), "limit");
    const match = containerFilter(
      filters,
      (ref) => containers.find(ref),
      (rec, ref) => rec.imageRef === ref || rec.imageId === ref || rec.imageId.replace(/^sha256:/, "").startsWith(ref.replace(/^sha256:/, "")) || rec.imageRef === `${ref}:latest`,
      (rec) => health.statusOf(rec.id),
    );
    let list = containers
      .list()
      .filter(
        (r) =>
          all || limit !== undefined || filters.status !== undefined || filters.exited !== undefined || r.state.status === "running" || r.state.status === "paused" || r.state.status === "restarting",
      )
      .filter(match)
      .sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    if (limit !== undefined && limit > 0) list = list.slice(0, limit);
    const withSize = flag(c.req.query("size"));
    if (!withSize) return c.json(list.map((r) => summaryView(r, health.of(r.id))));
    const sized = [];
    for (const r of list) sized.push({ ...summaryView(r, health.of(r.id)), ...(await containerSizes(r, containers.rootfsHelpers)) });
    return c.json(sized);
  });

  app.get("/containers/:id/json", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const view: Record<string, unknown> = inspectView(rec, execs.idsOf(rec.id), health.of(rec.id));
    if (flag(c.req.query("size"))) Object.assign(view, await containerSizes(rec, containers.rootfsHelpers));
    return c.json(view);
  });

  app.post("/containers/:id/start", async (c) => {
    const started = await containers.start(c.req.param("id"));
    return c.body(null, started ? 204 : 304);
  });

  app.post("/containers/:id/stop", async (c) => {
    const stopped = await containers.stop(c.req.param("id"), c.req.query("signal") || undefined, optionalInt(c.req.query("t") ?? c.req.query("timeout"), "t"));
    return c.body(null, stopped ? 204 : 304);
  });

  app.post("/containers/:id/restart", async (c) => {
    await containers.restart(c.req.param("id"), c.req.query("signal") || undefined, optionalInt(c.req.query("t") ?? c.req.query("timeout"), "t"));
    return c.body(null, 204);
  });

  app.post("/containers/:id/kill", async (c) => {
    await containers.kill(c.req.param("id"), c.req.query("signal") || "SIGKILL");
    return c.body(null, 204);
  });

  app.post("/containers/:id/pause", async (c) => {
    await containers.pause(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/containers/:id/unpause", async (c) => {
    await containers.unpause(c.req.param("id"));
    return c.body(null, 204);
  });

  app.post("/containers/:id/rename", async (c) => {
    await containers.rename(c.req.param("id"), c.req.query("name") ?? "");
    return c.body(null, 204);
  });

  app.post("/containers/:id/update", async (c) => {
    const warnings = await containers.update(c.req.param("id"), await jsonBody(c));
    return c.json({ Warnings: warnings });
  });

  app.post("/containers/:id/resize", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const h = optionalInt(c.req.query("h"), "h") ?? 0;
    const w = optionalInt(c.req.query("w"), "w") ?? 0;
    if (rec.state.status !== "running") throw new ContainerError("conflict", `Container ${rec.id} is not running`);
    await queries.resizeTty(rec.id, h, w);
    return c.body(null, 200);
  });

  app.post("/containers/:id/wait", (c) => {
    const rec = containers.get(c.req.param("id"));
    const condition = c.req.query("condition") || "not-running";
    let result: Promise<{ code: number; error: string }>;
    // A client that goes away before the condition is met leaves no waiter behind.
    const gone = new AbortController();
    if (condition === "not-running") {
      const active = ["running", "paused", "restarting"].includes(rec.state.status);
      result = active ? containers.waitExit(rec.id, gone.signal) : Promise.resolve({ code: rec.state.exitCode, error: "" });
    } else if (condition === "next-exit") result = containers.waitExit(rec.id, gone.signal);
    else if (condition === "removed") result = containers.waitRemoved(rec.id, gone.signal);
    else throw new ContainerError("invalid_argument", `invalid condition: "${condition}"`);
    // The leading newline makes the headers go out now: clients (docker run) wait for
    // them before starting the container, so the wait is registered first.
    const body = new ReadableStream<Uint8Array>({
      async start(ctrl) {
        ctrl.enqueue(new TextEncoder().encode("\n"));
        const r = await result;
        ctrl.enqueue(new TextEncoder().encode(`${JSON.stringify({ StatusCode: r.code, Error: r.error ? { Message: r.error } : null })}\n`));
        ctrl.close();
      },
      cancel: () => gone.abort(),
    });
    return new Response(body, { headers: { "Content-Type": "application/json" } });
  });

  // docker rm --link /parent/alias: the name holds slashes, sent as they are.
  app.delete("/containers/:id{.+}", async (c, next) => {
    if (!flag(c.req.query("link"))) return next();
    const { parent, links } = linkRemoval(c.req.param("id"), (ref) => containers.get(ref));
    containers.saveLinks(parent, links);
    return c.body(null, 204);
  });

  app.delete("/containers/:id", async (c) => {
    const rec = containers.get(c.req.param("id"));
    await containers.remove(rec.id, { force: flag(c.req.query("force")), volumes: flag(c.req.query("v")) }).catch((err: unknown) => {
      throw removeConflictForVersion(err, c.env.apiVersion, rec.id);
    });
    return c.body(null, 204);
  });

  app.post("/containers/prune", async (c) => {
    // Parsed in full before anything is removed: a filter that does not parse is a 400.
    const filters = parseFilters(c.req.query("filters"), FILTERS.containerPrune);
    const labels = filters.label ?? [];
    const notLabels = filters["label!"] ?? [];
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const rec of containers.list()) {
      if (!["created", "exited", "dead"].includes(rec.state.status)) continue;
      if (filters.until !== undefined && !(Date.parse(rec.created) / 1000 < filters.until)) continue;
      const l = rec.config.Labels ?? {};
      if (!labels.every((v) => labelMatches(l, v)) || notLabels.some((v) => labelMatches(l, v))) continue;
      // dockerd reports the writable layers' size (measured before they go).
      const size = await containers.rootfsHelpers.sizeRw(rec).catch(() => 0);
      await containers.remove(rec.id, { force: false, volumes: false });
      deleted.push(rec.id);
      reclaimed += size;
    }
    deps.events.publish("container", "prune", "", { reclaimed: String(reclaimed) });
    return c.json({ ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });

  app.get("/containers/:id/logs", (c) => {
    const rec = containers.get(c.req.param("id"));
    const q = (k: string) => c.req.query(k);
    const stdout = flag(q("stdout"));
    const stderr = flag(q("stderr"));
    if (!stdout && !stderr) throw new ContainerError("invalid_argument", "Bad parameters: you must choose at least one stream");
    // dockerd's ErrReadLogsNotSupported (a NotImplemented error: 501).
    if (rec.hostConfig.LogConfig?.Type === "none") throw new ContainerError("not_implemented", "configured logging driver does not support reading");
    const since = parseLogTime(q("since"));
    const until = parseLogTime(q("until"));
    if (Number.isNaN(since) || Number.isNaN(until)) throw new ContainerError("invalid_argument", "invalid value for since/until");
    const tailRaw = q("tail");
    const tail = !tailRaw || tailRaw === "all" ? undefined : optionalInt(tailRaw, "tail");
    const tty = !!rec.config.Tty;
    const reader = new LogReader(rec.logPath, {
      stdout,
      stderr,
      since: since || undefined,
      until: until || undefined,
      timestamps: flag(q("timestamps")),
      tail: tail !== undefined && tail < 0 ? undefined : tail,
      raw: tty,
    });
    const alive = ["running", "paused", "restarting"].includes(rec.state.status);
    // The waits are dropped as soon as the stream is over, ended or cancelled by the client.
    const release = new AbortController();
    const follow =
      flag(q("follow")) && alive
        ? { stopped: Promise.race([containers.waitStopped(rec.id, release.signal), containers.waitRemoved(rec.id, release.signal)]), release: () => release.abort() }
        : undefined;
    return new Response(reader.stream(follow), { headers: { "Content-Type": tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream" } });
  });

  app.post("/containers/:id/attach", (c) => streamedAttach(containers, c.req.param("id"), new URL(c.req.url).searchParams, c.env.apiVersion));
  // Upgraded requests never reach hono (the hijack router serves them): this is one without.
  app.get("/containers/:id/attach/ws", (c) => {
    containers.get(c.req.param("id"));
    throw new ContainerError("invalid_argument", "websocket: the client is not using the websocket protocol");
  });

  app.get("/containers/:id/top", async (c) => {
    const res = await queries.top(c.req.param("id"), c.req.query("ps_args") || "-ef");
    return c.json(res);
  });

  app.get("/containers/:id/stats", (c) => {
    const rec = containers.get(c.req.param("id"));
    const stream = c.req.query("stream") === undefined ? true : flag(c.req.query("stream"));
    return statsResponse(queries, rec, stream && !flag(c.req.query("one-shot")));
  });

  app.post("/commit", async (c) => {
    const rec = containers.get(c.req.query("container") ?? "");
    const repo = c.req.query("repo") ?? "";
    const tag = c.req.query("tag") ?? "";
    const body = (await jsonBody(c)) as Record<string, unknown>;
    const config = { ...rec.config, ...(body && typeof body === "object" ? body : {}) };
    const changes = c.req.queries("changes") ?? [];
    const pause = c.req.query("pause") === undefined ? true : flag(c.req.query("pause"));
    const id = await queries.commit(rec.id, {
      reference: repo ? (tag ? `${repo}:${tag}` : repo) : "",
      comment: c.req.query("comment") ?? "",
      author: c.req.query("author") ?? "",
      configJson: JSON.stringify(config),
      changes: changes.flatMap((x) => x.split("\n")).filter(Boolean),
      pause,
    });
    return c.json({ Id: id }, 201);
  });

  app.route("/", archiveRoutes(deps));
  return app;
}
