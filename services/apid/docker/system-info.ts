/**
 * /_ping and /version, as plain functions over node:fs/os facts: the hono routes
 * (routes/system.ts) use them, and so does apid's first stage, which answers these two
 * before hono, zod and Connect have loaded (`docker version` needs nothing else).
 */
import { ARCBOX_VERSION } from "../../../lib/version.ts";
import { hostFacts } from "../platform/host-facts.ts";
import { API_VERSION, MIN_API_VERSION } from "./api-version.ts";

/** The Docker Engine release whose API ArcBox implements; tools compare against it. */
export const ENGINE_COMPAT_VERSION = "28.2.0";

const pingHeaders = {
  "Api-Version": API_VERSION,
  "Builder-Version": "1",
  "Docker-Experimental": "false",
  Swarm: "inactive",
  Ostype: "linux",
  "Cache-Control": "no-cache, no-store, must-revalidate",
  Pragma: "no-cache",
  "Content-Type": "text/plain; charset=utf-8",
};

export function pingResponse(method: "GET" | "HEAD"): Response {
  if (method === "HEAD") return new Response(null, { headers: { ...pingHeaders, "Content-Length": "0" } });
  return new Response("OK", { headers: pingHeaders });
}

export function versionBody() {
  const h = hostFacts();
  const details = {
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    Os: h.osType,
    Arch: h.goArch,
    KernelVersion: h.kernelVersion,
    GitCommit: "",
    GoVersion: `bun${Bun.version}`,
    BuildTime: "",
  };
  return {
    Platform: { Name: `ArcBox ${ARCBOX_VERSION}` },
    Components: [
      { Name: "Engine", Version: ENGINE_COMPAT_VERSION, Details: details },
      { Name: "arcbox", Version: ARCBOX_VERSION, Details: { Runtime: `bun ${Bun.version}` } },
    ],
    Version: ENGINE_COMPAT_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: "",
    GoVersion: `bun${Bun.version}`,
    Os: h.osType,
    Arch: h.goArch,
    KernelVersion: h.kernelVersion,
    BuildTime: "",
  };
}

/** The answer to GET|HEAD /_ping and GET /version (path already unversioned); else undefined. */
export function systemFastPath(method: string, pathname: string): Response | undefined {
  if (pathname === "/_ping" && (method === "GET" || method === "HEAD")) return pingResponse(method);
  if (pathname === "/version" && method === "GET") return new Response(JSON.stringify(versionBody()), { headers: { "Content-Type": "application/json" } });
  return undefined;
}
