/**
 * Reads the request body of an upgraded request (exec start's JSON): exactly
 * Content-Length bytes, taken from `head` and then from the socket, and nowhere else.
 *
 * The Docker socket accepts its connections through node:net (server.ts), and for those
 * Bun's node:http behaves as Node's: the bytes that came with the headers are `head`,
 * the rest is still on the socket, and the request stream ends at once, empty. The body
 * is not always in `head`: Go's client (the docker CLI) flushes the headers before a
 * body it does not hold as a plain in-memory reader, so the body often travels in a
 * second write, and whether the server reads both in one chunk is a matter of timing.
 * Waiting on the request stream as well once ended the wait with no body, and the JSON
 * then reached the process as stdin when the stream began (`docker exec -i` printed
 * `{"Detach":false,"Tty":false}` first).
 *
 * Bytes past the body are returned as `rest` (the start of the client's stdin); the
 * socket is left paused, and its next bytes are the ones after `rest`.
 */
import type { Duplex } from "node:stream";
import { ContainerError } from "../../core/container-error.ts";
import type { HijackContext } from "../hijack.ts";
import { MAX_JSON_BODY_BYTES } from "../request-body.ts";

export async function readUpgradeBody(ctx: HijackContext): Promise<{ body: Buffer; rest: Buffer }> {
  const header = ctx.req.headers["content-length"];
  const length = header === undefined ? 0 : Number(header);
  if (!Number.isSafeInteger(length) || length < 0) throw new ContainerError("invalid_argument", `invalid Content-Length: ${header}`);
  if (length > MAX_JSON_BODY_BYTES) throw new ContainerError("invalid_argument", `request body too large: JSON bodies are limited to ${MAX_JSON_BODY_BYTES >> 20} MiB`);
  const head = ctx.head ?? Buffer.alloc(0);
  const all = head.length >= length ? head : await readFromSocket(ctx.socket, head, length);
  return { body: all.subarray(0, length), rest: all.subarray(length) };
}

/**
 * Reads on from the socket until `length` bytes (with `have`) or its end; pauses it again
 * in the data handler that completes the body, so nothing after it is consumed.
 */
function readFromSocket(socket: Duplex, have: Buffer, length: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks = [have];
    let size = have.length;
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= length) done();
    };
    // A client gone before its body was complete: what came is returned, and fails to parse.
    const done = () => {
      socket.pause();
      socket.off("data", onData).off("end", done).off("close", done);
      resolve(Buffer.concat(chunks, size));
    };
    socket.on("data", onData).once("end", done).once("close", done);
    socket.resume();
  });
}
