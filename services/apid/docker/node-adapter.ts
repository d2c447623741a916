/**
 * Bridges node:http to fetch-style handlers (hono's `app.fetch`). apid uses node:http
 * rather than Bun.serve because attach and exec need the raw socket of an upgraded
 * connection, which only node:http's `upgrade` event hands out.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";

export type FetchHandler = (req: Request) => Response | Promise<Response>;

/**
 * `body`: "stream" passes the request body through as it arrives; bytes (already read,
 * e.g. a bounded JSON body) or undefined are used as they are.
 */
export function toFetchRequest(req: IncomingMessage, body: "stream" | Uint8Array | undefined): Request {
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const method = req.method ?? "GET";
  return new Request(`http://docker${req.url ?? "/"}`, {
    method,
    headers,
    body: body === "stream" ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : body,
    // `duplex` is required by fetch for streamed request bodies.
    duplex: "half",
  });
}

/** Streams a fetch Response into a node ServerResponse, honouring backpressure. */
export async function writeFetchResponse(res: ServerResponse, response: Response, method: string): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((value, name) => {
    const prev = headers[name];
    headers[name] = prev === undefined ? value : ([] as string[]).concat(prev, value);
  });
  res.writeHead(response.status, headers);
  if (!response.body || method === "HEAD") {
    res.end();
    return;
  }
  const reader = response.body.getReader();
  const onClose = () => void reader.cancel().catch(() => {});
  res.once("close", onClose);
  try {
    // A stream with nothing to say yet (events, logs --follow, a slow pull) still sends
    // its status and headers at once, as Docker does: clients wait for them. A body that
    // is ready goes out with its headers in one write.
    let next: ReturnType<typeof reader.read> | undefined = reader.read();
    const notYet = Symbol();
    if ((await Promise.race([next, new Promise<typeof notYet>((r) => setImmediate(r, notYet))])) === notYet) res.flushHeaders();
    for (;;) {
      const { done, value } = await (next ?? reader.read());
      next = undefined;
      if (done) break;
      if (!res.write(value)) await new Promise<void>((r) => res.once("drain", r));
    }
    res.end();
  } catch {
    res.destroy();
  } finally {
    res.off("close", onClose);
  }
}
