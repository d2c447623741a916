/**
 * Routes for hijacked connections (HTTP Upgrade: attach, exec start). A handler gets
 * the raw duplex socket after the request line and headers have been read.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

export interface HijackContext {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  params: Record<string, string>;
  query: URLSearchParams;
  apiVersion: string;
}

type HijackHandler = (ctx: HijackContext) => void | Promise<void>;

interface HijackRoute {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: HijackHandler;
}

export class HijackRouter {
  private routes: HijackRoute[] = [];

  /** `path` uses hono-style `:name` parameters, e.g. `/containers/:id/attach`. */
  on(method: string, path: string, handler: HijackHandler): void {
    const names: string[] = [];
    const pattern = new RegExp(`^${path.replace(/:([a-zA-Z]+)/g, (_, n) => (names.push(n), "([^/]+)"))}$`);
    this.routes.push({ method, pattern, names, handler });
  }

  match(method: string, path: string): { handler: HijackHandler; params: Record<string, string> } | undefined {
    for (const r of this.routes) {
      if (r.method !== method) continue;
      const m = r.pattern.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      for (const [i, n] of r.names.entries()) params[n] = decodeURIComponent(m[i + 1]!);
      return { handler: r.handler, params };
    }
    return undefined;
  }
}

/** Writes a complete JSON error response on a socket that was never upgraded. */
export function rejectHijack(socket: Duplex, status: number, message: string): void {
  const body = `${JSON.stringify({ message })}\n`;
  const reason = status === 404 ? "Not Found" : status === 400 ? "Bad Request" : status === 409 ? "Conflict" : "Error";
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
