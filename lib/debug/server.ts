/**
 * The debug socket every service serves next to its Connect socket:
 *   GET /health  -> {"status":"ok",...}
 *   GET /state   -> JSON dump of the service's state
 *   GET /metrics -> Prometheus text format
 */
import { listenUnix, type UnixHttpServer } from "../rpc/unix-socket.ts";
import type { MetricsRegistry } from "./metrics.ts";

export interface DebugSources {
  service: string;
  version: string;
  metrics: MetricsRegistry;
  state: () => unknown | Promise<unknown>;
}

export function serveDebug(socketPath: string, src: DebugSources): UnixHttpServer {
  return listenUnix(socketPath, debugHandler(src));
}

export function debugHandler(src: DebugSources): (req: Request) => Promise<Response> {
  return async (req) => {
    const path = new URL(req.url).pathname;
    if (req.method !== "GET") return Response.json({ message: "method not allowed" }, { status: 405 });
    switch (path) {
      case "/health":
        return Response.json({ status: "ok", service: src.service, version: src.version, pid: process.pid, uptimeSeconds: process.uptime() });
      case "/state":
        return Response.json(await src.state());
      case "/metrics":
        return new Response(src.metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4" } });
      default:
        return Response.json({ message: `no debug endpoint ${path}` }, { status: 404 });
    }
  };
}
