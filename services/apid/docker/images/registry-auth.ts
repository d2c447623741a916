/** Decodes Docker's X-Registry-Auth header (base64url JSON) into the imaged contract. */
import { z } from "zod";
import { create } from "@bufbuild/protobuf";
import type * as ImagesPb from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import type { RegistryAuth } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";

export const authConfigSchema = z
  .object({
    username: z.string().optional(),
    password: z.string().optional(),
    auth: z.string().optional(),
    email: z.string().optional(),
    serveraddress: z.string().optional(),
    identitytoken: z.string().optional(),
    registrytoken: z.string().optional(),
  })
  .passthrough();

export type AuthConfig = z.infer<typeof authConfigSchema>;

/** Normalizes any casing the clients use (docker-py sends "ServerAddress" etc.). */
function lowerKeys(v: unknown): unknown {
  if (!v || typeof v !== "object" || Array.isArray(v)) return v;
  return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k.toLowerCase(), x]));
}

export function toRegistryAuth(cfg: AuthConfig): RegistryAuth {
  let { username = "", password = "" } = cfg;
  if (!username && cfg.auth) {
    const decoded = Buffer.from(cfg.auth, "base64").toString("utf8");
    const i = decoded.indexOf(":");
    if (i > 0) {
      username = decoded.slice(0, i);
      password = decoded.slice(i + 1);
    }
  }
  // Loaded on use: see query.ts (imageFilters) for why.
  const { RegistryAuthSchema } = require("../../../../proto/gen/arcbox/images/v1/images_pb.ts") as typeof ImagesPb;
  return create(RegistryAuthSchema, { username, password, identityToken: cfg.identitytoken ?? "", registryToken: cfg.registrytoken ?? "", serverAddress: cfg.serveraddress ?? "" });
}

/** Parses the header; a missing or unreadable header means anonymous access, as in Docker. */
export function registryAuthFromHeader(header: string | undefined | null): RegistryAuth | undefined {
  if (!header) return undefined;
  try {
    const json = Buffer.from(header.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8");
    const parsed = authConfigSchema.safeParse(lowerKeys(JSON.parse(json)));
    return parsed.success ? toRegistryAuth(parsed.data) : undefined;
  } catch {
    return undefined;
  }
}
