/**
 * Docker API: GET /distribution/{name}/json, what a registry serves for a reference
 * (the manifest's descriptor and its platforms), asked of imaged's registry client
 * with the caller's X-Registry-Auth.
 */
import { Hono } from "hono";
import type { DistributionPlatform } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { registryAuthFromHeader } from "../images/registry-auth.ts";

/** OCI's platform JSON: empty optional fields are left out, as Docker leaves them. */
function platformJson(p: DistributionPlatform): Record<string, unknown> {
  const out: Record<string, unknown> = { architecture: p.architecture, os: p.os };
  if (p.osVersion) out["os.version"] = p.osVersion;
  if (p.osFeatures.length) out["os.features"] = p.osFeatures;
  if (p.variant) out.variant = p.variant;
  return out;
}

export function distributionRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();

  app.get("/distribution/:name{.+}/json", async (c) => {
    const auth = registryAuthFromHeader(c.req.header("X-Registry-Auth"));
    const res = await deps.clients.images.distributionInspect({ reference: c.req.param("name"), auth });
    return c.json({
      Descriptor: { mediaType: res.mediaType, digest: res.digest, size: Number(res.size) },
      Platforms: res.platforms.map(platformJson),
    });
  });

  return app;
}
