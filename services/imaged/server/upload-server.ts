/**
 * imaged's raw HTTP socket for byte streams flowing in (docker load, docker import),
 * which fetch-based Connect cannot carry. apid forwards the request body as it
 * arrives; the answer is newline-delimited Docker progress JSON.
 */
import { chmodSync, rmSync } from "node:fs";
import type { Logger } from "../../../lib/log.ts";
import { countRequests } from "../../../lib/service/activity.ts";
import type { ImageCore } from "../core/image-core.ts";
import { dockerMessage, type Emit, type ProgressEvent } from "../core/progress.ts";

export interface UploadServer {
  /** An upload (docker load / import) is being received. */
  readonly busy: boolean;
  stop(): Promise<void>;
}

function ndjson(run: (emit: Emit) => Promise<unknown>): Response {
  const enc = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const emit = (e: ProgressEvent) => controller.enqueue(enc.encode(`${JSON.stringify(dockerMessage(e))}\r\n`));
      try {
        await run(emit);
      } catch (err) {
        emit({ error: err instanceof Error ? err.message : String(err) });
      }
      controller.close();
    },
  });
  return new Response(stream, { headers: { "Content-Type": "application/x-ndjson" } });
}

export function serveUploads(socketPath: string, core: ImageCore, log: Logger): UploadServer {
  rmSync(socketPath, { force: true });
  let inFlight = 0;
  const options = {
    unix: socketPath,
    // Uploads of big archives can pause between chunks; never time them out here.
    idleTimeout: 0,
    fetch: countRequests(
      async (req: Request) => {
        const url = new URL(req.url);
        const body = req.body ?? new Response(new Uint8Array()).body!;
        if (req.method === "POST" && url.pathname === "/load") {
          // Quiet: only the result lines ("Loaded image: ..."), no per-layer progress.
          const quiet = url.searchParams.get("quiet") === "1";
          return ndjson((emit) => core.load(body, quiet ? (e) => (e.stream !== undefined || e.error ? emit(e) : undefined) : emit));
        }
        if (req.method === "POST" && url.pathname === "/import") {
          const q = url.searchParams;
          return ndjson((emit) =>
            core.importTarball(body, { repo: q.get("repo") ?? "", tag: q.get("tag") ?? "", message: q.get("message") ?? "", changes: q.getAll("changes"), platform: q.get("platform") ?? "" }, emit),
          );
        }
        log.warn("unknown upload path", { path: url.pathname });
        return new Response("not found", { status: 404 });
      },
      () => inFlight++,
      () => inFlight--,
    ),
  };
  // Bun's types omit idleTimeout for Unix sockets, but the server honours it.
  const server = Bun.serve(options as unknown as Parameters<typeof Bun.serve>[0]);
  chmodSync(socketPath, 0o600);
  return {
    get busy() {
      return inFlight > 0;
    },
    async stop() {
      await server.stop(true);
      rmSync(socketPath, { force: true });
    },
  };
}
