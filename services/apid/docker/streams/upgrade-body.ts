/**
 * Reads the request body of an upgraded request: with `Connection: Upgrade`, node hands
 * over the socket right after the headers, so a body (exec start's JSON) arrives in `head`
 * and on the socket. Returns the body and whatever bytes followed it.
 */
import type { HijackContext } from "../hijack.ts";

export async function readUpgradeBody(ctx: HijackContext): Promise<{ body: Buffer; rest: Buffer }> {
  const length = Number(ctx.req.headers["content-length"] ?? 0);
  let buf = ctx.head ?? Buffer.alloc(0);
  if (!length) return { body: Buffer.alloc(0), rest: buf };
  while (buf.length < length) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (c: Buffer) => (cleanup(), resolve(c));
      const onEnd = () => (cleanup(), resolve(null));
      const cleanup = () => {
        ctx.socket.off("data", onData);
        ctx.socket.off("end", onEnd);
        ctx.socket.off("close", onEnd);
      };
      ctx.socket.on("data", onData);
      ctx.socket.once("end", onEnd);
      ctx.socket.once("close", onEnd);
    });
    if (!chunk) break;
    buf = Buffer.concat([buf, chunk]);
  }
  ctx.socket.pause();
  return { body: buf.subarray(0, length), rest: buf.subarray(length) };
}
