/** HTTP on a Unix socket with Bun.serve; replaces a stale socket file left by a crash. */
import { chmodSync, rmSync } from "node:fs";

export interface UnixHttpServer {
  stop(): Promise<void>;
}

export function listenUnix(
  socketPath: string,
  fetch: (req: Request) => Response | Promise<Response>,
  mode = 0o600,
): UnixHttpServer {
  // Callers hold the supervisor lock (or are its children), so an existing file is stale.
  rmSync(socketPath, { force: true });
  const server = Bun.serve({ unix: socketPath, fetch });
  chmodSync(socketPath, mode);
  return {
    async stop() {
      await server.stop(true);
      rmSync(socketPath, { force: true });
    },
  };
}
