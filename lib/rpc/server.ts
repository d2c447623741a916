/**
 * Serves a Connect router on a Unix socket with Bun.serve. Errors thrown by
 * implementations are mapped to Connect codes here, so core code throws ArcboxError only.
 */
import { createConnectRouter, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { createFetchHandler } from "@connectrpc/connect/protocol";
import { toConnectError } from "./connect-errors.ts";
import { listenUnix } from "./unix-socket.ts";

const mapErrors: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw toConnectError(err);
  }
};

export interface ConnectServer {
  stop(): Promise<void>;
}

/** The fetch handler of a Connect router: one handler per procedure path. */
export function connectHandler(routes: (router: ConnectRouter) => void): (req: Request) => Promise<Response> {
  const router = createConnectRouter({ interceptors: [mapErrors] });
  routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, createFetchHandler(h)]));
  return async (req) => {
    const handler = handlers.get(new URL(req.url).pathname);
    if (!handler) return new Response("unknown procedure", { status: 404 });
    return handler(req);
  };
}

/** `track`, when given, wraps the handler (e.g. to count requests in flight). */
export function serveConnect(
  socketPath: string,
  routes: (router: ConnectRouter) => void,
  track: (h: (req: Request) => Promise<Response>) => (req: Request) => Promise<Response> = (h) => h,
): ConnectServer {
  return listenUnix(socketPath, track(connectHandler(routes)));
}
