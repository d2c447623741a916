/**
 * `POST /networks/create` bodies, read as dockerd reads them: every optional field may
 * be null (docker-py sends `"IPRange": null`, compose `"Options": null`), unknown fields
 * are ignored, and the swarm-only fields (Scope, Ingress) get a non-swarm dockerd's answers.
 */
import { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";
import { NOT_A_MANAGER } from "../routes/swarm.ts";

const strMap = z.record(z.string(), z.string()).nullish();

const IpamPoolSchema = z
  .object({
    Subnet: z.string().nullish(),
    IPRange: z.string().nullish(),
    Gateway: z.string().nullish(),
    AuxiliaryAddresses: strMap,
  })
  .loose();

export const NetworkCreateSchema = z
  .object({
    Name: z.string().min(1, "network name is required"),
    CheckDuplicate: z.boolean().nullish(),
    Driver: z.string().nullish(),
    Scope: z.string().nullish(),
    Internal: z.boolean().nullish(),
    Attachable: z.boolean().nullish(),
    Ingress: z.boolean().nullish(),
    ConfigOnly: z.boolean().nullish(),
    EnableIPv4: z.boolean().nullish(),
    EnableIPv6: z.boolean().nullish(),
    IPAM: z
      .object({ Driver: z.string().nullish(), Config: z.array(IpamPoolSchema).nullish(), Options: strMap })
      .loose()
      .nullish(),
    Options: strMap,
    Labels: strMap,
  })
  .loose();
export type NetworkCreateBody = z.infer<typeof NetworkCreateSchema>;

/**
 * dockerd (not in a swarm): an ingress network must be a swarm one (403), a "swarm"
 * scope needs an active swarm (403), any other scope but "local" goes to the swarm
 * manager (500 there, 503 here as for every other swarm call). Names are not unique in
 * dockerd 20.10 without CheckDuplicate; here they always are (as in API 1.44+).
 */
export function checkSwarmFields(b: NetworkCreateBody): void {
  if (b.Ingress) throw new ArcboxError("permission_denied", "Ingress network can only be global scope network");
  const scope = b.Scope ?? "";
  if (scope === "" || scope === "local") return;
  if (scope === "swarm") throw new ArcboxError("permission_denied", "cannot create a swarm scoped network when swarm is not active");
  throw new ArcboxError("unavailable", NOT_A_MANAGER);
}

/** API 1.47+'s EnableIPv4: false asks for an IPv6-only network, which netd cannot build. */
export function checkAddressFamilies(b: NetworkCreateBody): void {
  if (b.EnableIPv4 === false) throw new ArcboxError("invalid_argument", "IPv6-only networks (EnableIPv4: false) are not supported by ArcBox: every network has an IPv4 subnet");
}

/** netd's CreateRequest from the body (nulls read as "not given"). */
export function createRequest(b: NetworkCreateBody) {
  return {
    name: b.Name,
    driver: b.Driver ?? "",
    internal: b.Internal ?? false,
    attachable: b.Attachable ?? false,
    enableIpv6: b.EnableIPv6 ?? false,
    ipamDriver: b.IPAM?.Driver ?? "",
    ipam: (b.IPAM?.Config ?? []).map((p) => ({ subnet: p.Subnet ?? "", gateway: p.Gateway ?? "", ipRange: p.IPRange ?? "", auxAddresses: p.AuxiliaryAddresses ?? {} })),
    options: b.Options ?? {},
    labels: b.Labels ?? {},
    ipamOptions: b.IPAM?.Options ?? {},
  };
}
