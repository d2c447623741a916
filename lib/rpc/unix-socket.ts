/** HTTP on a Unix socket with Bun.serve; replaces a stale socket file left by a crash. */
import { chmodSync, rmSync } from "node:fs";
import { noteActivity } from "../service/settle-gc.ts";

export interface UnixHttpServer {
  stop(): Promise<void>;
}

export function listenUnix(socketPath: string, fetch: (req: Request) => Response | Promise<Response>, mode = 0o600): UnixHttpServer {
  // Callers hold the supervisor lock (or are its children), so an existing file is stale.
  rmSync(socketPath, { force: true });
  // idleTimeout 0: server streams (events, pull progress) may stay quiet for long; Bun's
  // default would cut them after 10 s. Bun honours it on Unix sockets, though its types
  // only declare it for TCP listeners.
  // Each request arms the collection after the burst (lib/service/settle-gc.ts).
  const noted = (req: Request) => (noteActivity(), fetch(req));
  const options = { unix: socketPath, fetch: noted, idleTimeout: 0 };
  const server = Bun.serve(options as unknown as Parameters<typeof Bun.serve>[0]);
  chmodSync(socketPath, mode);
  return {
    async stop() {
      await server.stop(true);
      rmSync(socketPath, { force: true });
    },
  };
}

type FetchHandler = (req: Request) => Response | Promise<Response>;

/**
 * A handler whose code loads on the first request (an idle process that is never asked
 * keeps none of it in memory). A failed load is retried on the next request.
 */
export function lazyHandler(load: () => Promise<FetchHandler>): FetchHandler {
  let loading: Promise<FetchHandler> | undefined;
  return async (req) => {
    loading ??= load().catch((err) => {
      loading = undefined;
      throw err;
    });
    return (await loading)(req);
  };
}
