/**
 * Forwards a request body (docker load / import tarball) to imaged's raw upload
 * socket as it arrives, and relays imaged's JSON progress back.
 */
import type { DockerApiDeps } from "../deps.ts";
import { errorResponse } from "../errors.ts";

export async function forwardUpload(deps: DockerApiDeps, pathAndQuery: string, req: Request): Promise<Response> {
  try {
    // StreamEndpoint also starts imaged when it is not running yet.
    const { socketPath } = await deps.clients.images.streamEndpoint({});
    // No keep-alive: a pooled idle connection would wake apid and imaged every second or so.
    const res = await fetch(`http://imaged${pathAndQuery}`, { method: "POST", body: req.body, duplex: "half", unix: socketPath, keepalive: false, headers: { Connection: "close" } } as RequestInit);
    return new Response(res.body, { status: res.status, headers: { "Content-Type": "application/json" } });
  } catch (err) {
    return errorResponse(err);
  }
}
