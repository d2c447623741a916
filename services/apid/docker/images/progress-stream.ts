/**
 * Streams imaged's progress messages to the client as Docker's newline-delimited
 * JSON. The first message is awaited before answering: a failure before any
 * progress (unknown image, bad credentials) is a plain HTTP error, as in Docker.
 */
import type { Progress } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import { fromConnectError } from "../../../../lib/rpc/connect-errors.ts";
import { errorResponse } from "../errors.ts";

export function progressJson(p: Progress): Record<string, unknown> {
  if (p.error) return { errorDetail: { message: p.error }, error: p.error };
  const out: Record<string, unknown> = {};
  if (p.status) out.status = p.status;
  if (p.total > 0n || p.current > 0n) out.progressDetail = { current: Number(p.current), total: Number(p.total) };
  else if (p.status) out.progressDetail = {};
  if (p.id) out.id = p.id;
  if (p.auxJson) out.aux = JSON.parse(p.auxJson);
  return out;
}

export async function progressResponse(messages: AsyncIterable<{ progress?: Progress }>, opts: { quiet?: boolean } = {}): Promise<Response> {
  const it = messages[Symbol.asyncIterator]();
  let first: IteratorResult<{ progress?: Progress }>;
  try {
    first = await it.next();
  } catch (err) {
    return errorResponse(err);
  }
  const enc = new TextEncoder();
  const line = (p: Progress | undefined) => (p && (!opts.quiet || p.error) ? enc.encode(`${JSON.stringify(progressJson(p))}\r\n`) : undefined);
  let pending: IteratorResult<{ progress?: Progress }> | undefined = first;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const r = pending ?? (await it.next());
          pending = undefined;
          if (r.done) {
            controller.close();
            return;
          }
          const bytes = line(r.value.progress);
          if (bytes) {
            controller.enqueue(bytes);
            return;
          }
        }
      } catch (err) {
        // A Connect error's own message carries a "[code]" prefix; the client sees ours.
        const { message } = fromConnectError(err);
        controller.enqueue(enc.encode(`${JSON.stringify({ errorDetail: { message }, error: message })}\r\n`));
        controller.close();
      }
    },
    async cancel() {
      await it.return?.();
    },
  });
  return new Response(body, { headers: { "Content-Type": "application/json" } });
}
