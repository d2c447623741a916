/**
 * Reads the request body of an upgraded request (exec start's JSON). Node hands the
 * body over in `head` and on the socket; Bun's node:http delivers it on the request
 * stream instead. Both are read until Content-Length bytes have arrived; socket bytes
 * past the body are returned as `rest` (the start of the client's stdin).
 */
import type { HijackContext } from "../hijack.ts";

export async function readUpgradeBody(ctx: HijackContext): Promise<{ body: Buffer; rest: Buffer }> {
  const length = Number(ctx.req.headers["content-length"] ?? 0);
  let buf = ctx.head ?? Buffer.alloc(0);
  if (!length || buf.length >= length) return { body: buf.subarray(0, length), rest: buf.subarray(length) };
  await new Promise<void>((resolve) => {
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= length) done();
    };
    const done = () => {
      ctx.req.off("data", onData);
      ctx.socket.off("data", onData);
      ctx.req.off("end", done);
      ctx.socket.off("close", done);
      resolve();
    };
    ctx.req.on("data", onData);
    ctx.socket.on("data", onData);
    ctx.req.once("end", done);
    ctx.socket.once("close", done);
  });
  ctx.socket.pause();
  return { body: buf.subarray(0, length), rest: buf.subarray(length) };
}
