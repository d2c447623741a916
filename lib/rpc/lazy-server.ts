/**
 * A Connect server whose code loads on its first request: the routes (their descriptors
 * and implementations) and Connect's router itself. The router module cannot be
 * imported up front at no cost: it brings Connect's gRPC protocol, whose google.rpc.Status
 * descriptor is built when the module loads, and the first descriptor a process builds
 * boots protobuf's descriptor.proto (~3.5 MB of heap). apid, whose Connect socket only
 * the CLI calls, keeps none of it until then.
 */
import type { ConnectRouter } from "@connectrpc/connect";
import type { ConnectServer } from "./server.ts";
import { lazyHandler, listenUnix } from "./unix-socket.ts";

export function serveConnectLazy(
  socketPath: string,
  load: () => Promise<(router: ConnectRouter) => void>,
  track: (h: (req: Request) => Promise<Response>) => (req: Request) => Promise<Response> = (h) => h,
): ConnectServer {
  const handler = lazyHandler(async () => {
    const [{ connectHandler }, routes] = await Promise.all([import("./server.ts"), load()]);
    return connectHandler(routes);
  });
  return listenUnix(
    socketPath,
    track(async (req) => handler(req)),
  );
}
