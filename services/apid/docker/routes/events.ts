/**
 * Docker API: GET /events (history since `since`, then live until `until` or disconnect),
 * and the middleware that turns image, network and volume requests into events.
 */
import { Hono, type MiddlewareHandler } from "hono";
import { ContainerError } from "../../core/container-error.ts";
import { matchesEventFilter, type EventsBus } from "../../core/events-bus.ts";
import { FILTERS, parseFilters } from "../filters.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import type { NetworkCreateBody } from "../networks/create-request.ts";
import { parseLogTime } from "../streams/log-reader.ts";
import type { volumeJson } from "../volumes/volume-json.ts";

/** Encoded events held for one subscriber that is not reading: thousands of ordinary ones. */
const SUBSCRIBER_QUEUE_BYTES = 4 << 20;

export function eventsRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const droppedEvents = deps.metrics.counter("events_dropped_total", "Events not sent to a `docker events` subscriber that stopped reading.");

  app.get("/events", (c) => {
    const filters = new Map(Object.entries(parseFilters(c.req.query("filters"), FILTERS.events)));
    const since = parseLogTime(c.req.query("since"));
    const until = parseLogTime(c.req.query("until"));
    if (Number.isNaN(since) || Number.isNaN(until)) throw new ContainerError("invalid_argument", "invalid value for since/until");
    const untilNano = until === undefined ? undefined : until * 1e9;
    const enc = new TextEncoder();
    let unsubscribe = () => {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>(
      {
        start(ctrl) {
          let closed = false;
          const close = () => {
            if (closed) return;
            closed = true;
            unsubscribe();
            if (timer) clearTimeout(timer);
            ctrl.close();
          };
          const send = (e: Parameters<typeof matchesEventFilter>[0]) => {
            if (closed) return;
            if (untilNano !== undefined && e.timeNano > untilNano) return close();
            if (!matchesEventFilter(e, filters)) return;
            // A subscriber that does not read loses events past its queue, as with dockerd
            // (whose per-subscriber buffer drops after a timeout), rather than growing apid.
            if ((ctrl.desiredSize ?? 1) <= 0) return droppedEvents.inc();
            ctrl.enqueue(enc.encode(`${JSON.stringify(e)}\n`));
          };
          const sub = deps.events.subscribe(since === undefined ? undefined : since * 1e9, send);
          unsubscribe = sub.unsubscribe;
          for (const e of sub.past) send(e);
          if (untilNano !== undefined) {
            const ms = untilNano / 1e6 - Date.now();
            if (ms <= 0) close();
            else timer = setTimeout(close, ms);
          }
        },
        cancel() {
          unsubscribe();
          if (timer) clearTimeout(timer);
        },
      },
      new ByteLengthQueuingStrategy({ highWaterMark: SUBSCRIBER_QUEUE_BYTES }),
    );
    return new Response(body, { headers: { "Content-Type": "application/json" } });
  });

  return app;
}

const NETWORK_CONNECT = /^\/networks\/(.+)\/(connect|disconnect)$/;

/** A network create or connect body, as its route validated it before a 2xx ({} when unread or not JSON). */
type NetworkRequest = Partial<Pick<NetworkCreateBody, "Name" | "Driver">> & { Container?: string };

/**
 * Image, network and volume events, derived at the API edge from successful requests
 * (those services have no event stream of their own): pull, tag, untag, delete, import,
 * load; network create/destroy/connect/disconnect; volume create/destroy; prunes.
 */
export function resourceEvents(bus: EventsBus): MiddlewareHandler<DockerEnv> {
  return async (c, next) => {
    const method = c.req.method;
    if (method === "GET" || method === "HEAD") return next();
    const path = new URL(c.req.url).pathname;
    const wantsBody = method === "POST" && (path === "/networks/create" || NETWORK_CONNECT.test(path));
    const reqBody = (
      wantsBody
        ? c.req.raw
            .clone()
            .json()
            .catch(() => ({}))
        : Promise.resolve({})
    ) as Promise<NetworkRequest>;
    await next();
    if (c.res.status < 200 || c.res.status >= 300) return;
    const json = <T>() =>
      c.res
        .clone()
        .json()
        .catch(() => ({})) as Promise<T>;
    const q = new URL(c.req.url).searchParams;
    let m: RegExpExecArray | null;
    if (method === "POST" && path === "/images/create") {
      const ref = q.get("fromImage") ? `${q.get("fromImage")}${q.get("tag") ? (q.get("tag")!.startsWith("sha256:") ? "@" : ":") + q.get("tag") : ""}` : q.get("repo") || "";
      c.res = afterStream(c.res, (failed) => {
        if (!failed) bus.publish("image", q.get("fromImage") ? "pull" : "import", ref, { name: ref });
      });
    } else if (method === "POST" && path === "/images/load") {
      c.res = afterStream(c.res, (failed) => {
        if (!failed) bus.publish("image", "load", "", {});
      });
    } else if (method === "POST" && (m = /^\/images\/(.+)\/tag$/.exec(path))) {
      const name = `${q.get("repo")}${q.get("tag") ? `:${q.get("tag")}` : ":latest"}`;
      bus.publish("image", "tag", decodeURIComponent(m[1]!), { name });
    } else if (method === "DELETE" && (m = /^\/images\/(.+)$/.exec(path))) {
      const items = (await json<{ Untagged?: string; Deleted?: string }[]>()) ?? [];
      const deleted = items.find((i) => i.Deleted)?.Deleted ?? decodeURIComponent(m[1]!);
      for (const i of items) {
        if (i.Untagged) bus.publish("image", "untag", deleted, { name: i.Untagged });
        if (i.Deleted) bus.publish("image", "delete", i.Deleted, { name: i.Deleted });
      }
    } else if (method === "POST" && path === "/networks/create") {
      const [req, res] = await Promise.all([reqBody, json<{ Id?: string }>()]);
      bus.publish("network", "create", res.Id ?? "", { name: req.Name ?? "", type: req.Driver || "bridge" });
    } else if (method === "DELETE" && (m = /^\/networks\/(.+)$/.exec(path))) {
      bus.publish("network", "destroy", decodeURIComponent(m[1]!), { name: decodeURIComponent(m[1]!), type: "bridge" });
    } else if (method === "POST" && (m = NETWORK_CONNECT.exec(path))) {
      const req = await reqBody;
      bus.publish("network", m[2]!, decodeURIComponent(m[1]!), { container: req.Container ?? "", name: decodeURIComponent(m[1]!), type: "bridge" });
    } else if (method === "POST" && path === "/volumes/create") {
      const res = await json<Partial<ReturnType<typeof volumeJson>>>();
      bus.publish("volume", "create", res.Name ?? "", { driver: res.Driver ?? "local" });
    } else if (method === "DELETE" && (m = /^\/volumes\/([^/]+)$/.exec(path))) {
      bus.publish("volume", "destroy", decodeURIComponent(m[1]!), { driver: "local" });
    } else if (method === "POST" && (m = /^\/(images|networks|volumes)\/prune$/.exec(path))) {
      const res = await json<{ SpaceReclaimed?: number }>();
      const type = m[1]!.slice(0, -1) as "image" | "network" | "volume";
      bus.publish(type, "prune", "", { reclaimed: String(res.SpaceReclaimed ?? 0) });
    }
  };
}

/** Passes a streamed body through and reports at its end whether it carried an error line. */
function afterStream(res: Response, done: (failed: boolean) => void): Response {
  if (!res.body) {
    done(false);
    return res;
  }
  let failed = false;
  const dec = new TextDecoder();
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, ctrl) {
        if (!failed && /"error(Detail)?"\s*:/.test(dec.decode(chunk, { stream: true }))) failed = true;
        ctrl.enqueue(chunk);
      },
      flush: () => done(failed),
    }),
  );
  return new Response(body, { status: res.status, headers: res.headers });
}
