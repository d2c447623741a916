/** The RegistryConfig object of GET /info, from imaged's registry settings. */
import type { RegistryInfoResponse } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";

export function registryConfigJson(r: RegistryInfoResponse): Record<string, unknown> {
  const cidrs = ["127.0.0.0/8", "::1/128", ...r.insecureRegistries.filter((e) => e.includes("/"))];
  const hosts = r.insecureRegistries.filter((e) => !e.includes("/"));
  const indexConfigs: Record<string, unknown> = {
    "docker.io": { Name: "docker.io", Mirrors: r.mirrors.map((m) => `${m}/`), Secure: true, Official: true },
  };
  for (const h of hosts) indexConfigs[h] = { Name: h, Mirrors: [], Secure: false, Official: false };
  return {
    AllowNondistributableArtifactsCIDRs: null,
    AllowNondistributableArtifactsHostnames: null,
    InsecureRegistryCIDRs: cidrs,
    IndexConfigs: indexConfigs,
    Mirrors: r.mirrors.map((m) => `${m}/`),
  };
}
