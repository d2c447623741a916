/** Docker API: GET /events (history since `since`, then live until `until` or disconnect). */
import { Hono } from "hono";
import { ContainerError } from "../../core/container-error.ts";
import { matchesEventFilter } from "../../core/events-bus.ts";
import { parseFilters } from "../../core/list-filters.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { parseLogTime } from "../streams/log-reader.ts";

export function eventsRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();

  app.get("/events", (c) => {
    const filters = parseFilters(c.req.query("filters"), ["config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "secret", "service", "type", "volume"]);
    const since = parseLogTime(c.req.query("since"));
    const until = parseLogTime(c.req.query("until"));
    if (Number.isNaN(since) || Number.isNaN(until)) throw new ContainerError("invalid_argument", "invalid value for since/until");
    const untilNano = until === undefined ? undefined : until * 1e9;
    const enc = new TextEncoder();
    let unsubscribe = () => {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
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
          if (matchesEventFilter(e, filters)) ctrl.enqueue(enc.encode(JSON.stringify(e) + "\n"));
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
    });
    return new Response(body, { headers: { "Content-Type": "application/json" } });
  });

  return app;
}
