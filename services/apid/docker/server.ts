/**
 * The Docker socket: node:http on `run/docker.sock` (mode 0660), its connections
 * accepted through node:net (a hijacked one keeps its descriptor). Each request is
 * version-checked, stripped of its `/v1.NN` prefix, then routed through hono, or
 * through the hijack router when the client asks for a connection upgrade.
 *
 * Nothing here loads Connect, hono or zod: apid opens this socket first and answers
 * /_ping and /version while the rest of it has not loaded (see ../main.ts). The app and
 * the hijack router are therefore given as a fetch function and a (lazy) getter.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { chmodSync, rmSync } from "node:fs";
import type { Logger } from "../../../lib/log.ts";
import { splitVersionedPath } from "./api-version.ts";
import { dockerError } from "./error-body.ts";
import { rejectHijack, type HijackRouter } from "./hijack.ts";
import { toFetchRequest, writeFetchResponse } from "./node-adapter.ts";
import { isStreamBody, readBoundedBody } from "./request-body.ts";
import { noteActivity } from "../../../lib/service/settle-gc.ts";

export interface DockerServer {
  stop(): Promise<void>;
}

/** What the socket routes plain requests to: the hono app's fetch, or a stage in front of it. */
export interface DockerFetch {
  fetch(req: Request, env: { apiVersion: string }): Response | Promise<Response>;
}

/** Errors become Docker JSON through errors.ts, loaded when the first error happens. */
async function errorResponse(err: unknown): Promise<Response> {
  return (await import("./errors.ts")).errorResponse(err);
}

function rewrite(req: IncomingMessage) {
  const url = new URL(req.url ?? "/", "http://docker");
  const split = splitVersionedPath(url.pathname);
  if (split.ok) req.url = split.path + url.search;
  return split;
}

/** Go's http.DefaultMaxHeaderBytes, which dockerd keeps: big X-Registry-Auth headers fit. */
const MAX_HEADER_BYTES = 1 << 20;

/** The body as the route takes it: a pass-through stream, or bounded JSON read up front. */
async function requestBody(req: IncomingMessage): Promise<{ ok: true; bytes: "stream" | Uint8Array | undefined } | { ok: false; status: number; message: string }> {
  const method = req.method ?? "GET";
  if (method === "GET" || method === "HEAD") return { ok: true, bytes: undefined };
  const url = new URL(req.url ?? "/", "http://docker");
  if (isStreamBody(method, url.pathname, url.searchParams)) return { ok: true, bytes: "stream" };
  return readBoundedBody(req);
}

/** Answers a refused body and closes the connection: its unread rest is never read. */
function refuseBody(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { "Content-Type": "application/json", Connection: "close" });
  res.end(JSON.stringify({ message }), () => res.socket?.destroy());
}

export async function serveDocker(socketPath: string, app: DockerFetch, hijackRouter: () => HijackRouter | Promise<HijackRouter>, log: Logger): Promise<DockerServer> {
  const server: Server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, async (req, res) => {
    // A request, and again its end, arm the collection after the burst (settle-gc.ts).
    noteActivity();
    try {
      const split = rewrite(req);
      if (!split.ok) return await writeFetchResponse(res, dockerError(400, split.message), req.method ?? "GET");
      const body = await requestBody(req);
      if (!body.ok) return refuseBody(res, body.status, body.message);
      await writeFetchResponse(res, await app.fetch(toFetchRequest(req, body.bytes), { apiVersion: split.version }), req.method ?? "GET");
    } catch (err) {
      log.error("request failed", { url: req.url, error: err });
      if (!res.headersSent) await writeFetchResponse(res, await errorResponse(err), req.method ?? "GET");
      else res.destroy();
    } finally {
      noteActivity();
    }
  });

  server.on("upgrade", async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    noteActivity();
    socket.on("error", () => socket.destroy());
    const split = rewrite(req);
    if (!split.ok) return rejectHijack(socket, 400, split.message);
    const url = new URL(req.url ?? "/", "http://docker");
    const match = (await hijackRouter()).match(req.method ?? "GET", url.pathname);
    if (!match) return rejectHijack(socket, 404, `page not found: ${req.method} ${url.pathname}`);
    try {
      await match.handler({ req, socket, head, params: match.params, query: url.searchParams, apiVersion: split.version });
    } catch (err) {
      const res = await errorResponse(err);
      rejectHijack(socket, res.status, ((await res.json()) as { message: string }).message);
    }
  });

  // Garbage on the wire gets a JSON 400, not a dropped connection or a crash.
  server.on("clientError", (err: Error, socket: Duplex) => {
    if (!socket.writable) return socket.destroy();
    rejectHijack(socket, 400, `malformed HTTP request: ${err.message}`);
  });

  // Connections are accepted by node:net and handed to the HTTP server, so that a
  // hijacked one still has its descriptor: attach and exec ask the kernel whether the
  // client has read the upgrade's headers (streams/upgrade-read.ts).
  const connections = new Set<Socket>();
  // Half-open, as node:http's own listener: a client that half-closes (docker exec
  // without stdin) still reads the output.
  const listener = createNetServer({ allowHalfOpen: true }, (socket) => {
    connections.add(socket);
    socket.once("close", () => connections.delete(socket));
    server.emit("connection", socket);
  });
  rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(socketPath, () => resolve());
  });
  chmodSync(socketPath, 0o660);
  return {
    stop: () =>
      new Promise<void>((resolve) => {
        listener.close(() => resolve());
        for (const socket of connections) socket.destroy();
        server.closeAllConnections?.();
        rmSync(socketPath, { force: true });
      }),
  };
}
