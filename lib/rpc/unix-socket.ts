/** HTTP on a Unix socket with Bun.serve; replaces a stale socket file left by a crash. */
import { chmodSync, rmSync } from "node:fs";

export interface UnixHttpServer {
  stop(): Promise<void>;
}

export function listenUnix(socketPath: string, fetch: (req: Request) => Response | Promise<Response>, mode = 0o600): UnixHttpServer {
  // Callers hold the supervisor lock (or are its children), so an existing file is stale.
  rmSync(socketPath, { force: true });
  // idleTimeout 0: server streams (events, pull progress) may stay quiet for long; Bun's
  // default would cut them after 10 s. Bun honours it on Unix sockets, though its types
  // only declare it for TCP listeners.
  const options = { unix: socketPath, fetch, idleTimeout: 0 };
  const server = Bun.serve(options as unknown as Parameters<typeof Bun.serve>[0]);
  chmodSync(socketPath, mode);
  return {
    async stop() {
      await server.stop(true);
      rmSync(socketPath, { force: true });
    },
  };
}
