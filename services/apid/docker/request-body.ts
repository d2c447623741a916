/**
 * Request bodies on the Docker socket: the endpoints that take a byte stream (image
 * load and import, build context, archive upload, attach) pass it through unbounded;
 * every other body is JSON, read here up to a size limit and a nesting depth, so one
 * request cannot make apid buffer or parse without bound.
 *
 * Reading stops at the first byte past a limit: the rest is never read, and the
 * connection is closed after the error answer (as Go's MaxBytesReader does in dockerd).
 */
import type { IncomingMessage } from "node:http";

/**
 * Bigger than any body that can still run: a container's Cmd and Env go through
 * execve, whose argument space (ARG_MAX) is 2 MiB at the default stack size.
 */
export const MAX_JSON_BODY_BYTES = 4 << 20;
/** encoding/json's own limit, so dockerd refuses deeper documents too. */
export const MAX_JSON_DEPTH = 10_000;

const STREAM_ENDPOINTS: [method: string, path: RegExp][] = [
  ["POST", /^\/images\/load$/],
  ["POST", /^\/build$/],
  ["PUT", /^\/containers\/[^/]+\/archive$/],
  ["POST", /^\/containers\/[^/]+\/attach$/],
  ["POST", /^\/plugins\/create$/],
];

/** Whether the endpoint takes a byte stream (read as it arrives, never bounded). */
export function isStreamBody(method: string, path: string, query: URLSearchParams): boolean {
  // POST /images/create imports the body when fromSrc is given; a pull has none.
  if (method === "POST" && path === "/images/create") return query.has("fromSrc");
  return STREAM_ENDPOINTS.some(([m, re]) => m === method && re.test(path));
}

export type BoundedBody = { ok: true; bytes: Uint8Array | undefined } | { ok: false; status: number; message: string };

const tooLarge = (): BoundedBody => ({ ok: false, status: 413, message: `request body too large: JSON bodies are limited to ${MAX_JSON_BODY_BYTES >> 20} MiB` });

/**
 * Reads a JSON request body, stopping at the size or depth limit. On a refusal the
 * request is left paused with its remaining bytes unread; the caller answers and closes.
 */
export function readBoundedBody(req: IncomingMessage): Promise<BoundedBody> {
  if (Number(req.headers["content-length"]) > MAX_JSON_BODY_BYTES) return Promise.resolve(tooLarge());
  return new Promise((resolve) => {
    const depth = new JsonDepthScanner();
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (result: BoundedBody) => {
      req.off("data", onData).off("end", onEnd).off("error", onError);
      if (!result.ok) req.pause();
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_JSON_BODY_BYTES) return finish(tooLarge());
      if (!depth.scan(chunk)) return finish({ ok: false, status: 400, message: `invalid JSON: exceeded max depth (${MAX_JSON_DEPTH} levels)` });
      chunks.push(chunk);
    };
    const onEnd = () => finish({ ok: true, bytes: size === 0 ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    const onError = (err: Error) => finish({ ok: false, status: 400, message: `reading the request body: ${err.message}` });
    req.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACE = 0x7d;
const CLOSE_BRACKET = 0x5d;

/**
 * Tracks the nesting depth of a JSON text across chunks, ignoring brackets inside
 * strings. It does not validate: JSON.parse does that once the depth is known to be sane.
 */
export class JsonDepthScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;

  /** False once the text has gone deeper than `limit`. */
  scan(bytes: Uint8Array, limit = MAX_JSON_DEPTH): boolean {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) this.inString = false;
      } else if (b === QUOTE) this.inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) {
        if (++this.depth > limit) return false;
      } else if ((b === CLOSE_BRACE || b === CLOSE_BRACKET) && this.depth > 0) this.depth--;
    }
    return true;
  }
}
