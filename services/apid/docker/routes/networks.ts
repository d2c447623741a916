/** Docker API: /networks endpoints, served by netd. */
import { Hono } from "hono";
import { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";
import { FILTERS, labelMatches, parseFilters } from "../filters.ts";
import { networkJson } from "../networks/network-json.ts";
import { jsonBody as body } from "../networks/json-body.ts";
import { networkInfoOf, withEndpoint, withoutEndpoint } from "../../core/network-endpoints.ts";
import { checkAddressFamilies, checkSwarmFields, createRequest, NetworkCreateSchema } from "../networks/create-request.ts";

const ConnectSchema = z
  .object({
    Container: z.string().min(1, "container is required"),
    EndpointConfig: z
      .object({
        IPAMConfig: z
          .object({ IPv4Address: z.string().nullish(), IPv6Address: z.string().nullish(), LinkLocalIPs: z.array(z.string()).nullish() })
          .loose()
          .nullish(),
        Aliases: z.array(z.string()).nullish(),
        Links: z.array(z.string()).nullish(),
        MacAddress: z.string().nullish(),
      })
      .loose()
      .nullish(),
  })
  .loose();

const DisconnectSchema = z.object({ Container: z.string().min(1, "container is required"), Force: z.boolean().optional() }).loose();

export function networksRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const netd = () => deps.clients.networks;
  /** Container name or ID prefix -> full ID (404 for an unknown container). */
  const containerId = (ref: string) => {
    const rec = deps.containers.get(ref);
    return { id: rec.id, name: rec.name.replace(/^\//, "") };
  };

  app.get("/networks", async (c) => {
    const f = parseFilters(c.req.query("filters"), FILTERS.networkList);
    const dangling = f.dangling;
    const any = (vs: string[] | undefined, pred: (v: string) => boolean) => !vs?.length || vs.some(pred);
    const builtin = (name: string) => name === "bridge" || name === "host" || name === "none";
    const { networks } = await netd().list({});
    const out = networks
      .filter(
        (n) =>
          any(f.driver, (v) => n.driver === v) &&
          any(f.id, (v) => n.id.startsWith(v)) &&
          any(f.name, (v) => n.name.includes(v)) &&
          any(f.scope, (v) => v === "local") &&
          any(f.type, (v) => (v === "builtin") === builtin(n.name)) &&
          (f.label ?? []).every((v) => labelMatches(n.labels, v)) &&
          (dangling === undefined || dangling === (n.containers.length === 0 && !builtin(n.name))),
      )
      .map((n) => networkJson(n, false));
    return c.json(out);
  });

  // Network names may hold "/" ("a/b"), which clients send unescaped: dockerd's routes
  // take the rest of the path ({id:.*}), so do these.
  app.get("/networks/:id{.+}", async (c) => {
    const { network } = await netd().inspect({ network: c.req.param("id") });
    return c.json(networkJson(network!, true));
  });

  app.post("/networks/create", async (c) => {
    const b = await body(c.req.raw, NetworkCreateSchema);
    checkSwarmFields(b);
    checkAddressFamilies(b);
    const res = await netd().create(createRequest(b));
    return c.json({ Id: res.id, Warning: res.warning }, 201);
  });

  app.delete("/networks/:id{.+}", async (c) => {
    await netd().remove({ network: c.req.param("id") });
    return c.body(null, 204);
  });

  app.post("/networks/prune", async (c) => {
    // Parsed in full before netd removes anything: a filter that does not parse is a 400.
    const f = parseFilters(c.req.query("filters"), FILTERS.networkPrune);
    // netd reads 0 as "no until"; an until at or before the epoch keeps every network.
    const untilUnix = f.until === undefined ? 0 : Math.max(1, Math.ceil(f.until));
    const res = await netd().prune({ labels: f.label ?? [], notLabels: f["label!"] ?? [], untilUnix: BigInt(untilUnix) });
    // dockerd's report is a Go slice: null, not [], when nothing went.
    return c.json({ NetworksDeleted: res.deleted.length ? res.deleted : null });
  });

  /** After netd changed a container's endpoints: its record follows (EndpointsConfig, inspect). */
  const recordChange = async (id: string, endpointsConfig: (rec: ReturnType<typeof deps.containers.get>) => Record<string, unknown>) => {
    const rec = deps.containers.get(id);
    const live = (await netd().getAttachment({ containerId: rec.id })).attachment;
    // The entries are EndpointConfig bodies that ConnectSchema validated (or the record's own).
    deps.containers.saveNetworkChange(rec, endpointsConfig(rec) as typeof rec.endpointsConfig, live ? networkInfoOf(live) : undefined);
  };

  app.post("/networks/:id{.+}/connect", async (c) => {
    const b = await body(c.req.raw, ConnectSchema);
    const ctr = containerId(b.Container);
    const { network } = await netd().inspect({ network: c.req.param("id") });
    await netd().connect({
      containerId: ctr.id,
      containerName: ctr.name,
      endpoint: {
        network: c.req.param("id"),
        aliases: b.EndpointConfig?.Aliases ?? [],
        ipv4Address: b.EndpointConfig?.IPAMConfig?.IPv4Address ?? "",
        ipv6Address: b.EndpointConfig?.IPAMConfig?.IPv6Address ?? "",
        linkLocalIps: b.EndpointConfig?.IPAMConfig?.LinkLocalIPs ?? [],
        links: b.EndpointConfig?.Links ?? [],
        macAddress: b.EndpointConfig?.MacAddress ?? "",
      },
    });
    await recordChange(ctr.id, (rec) => withEndpoint(rec.endpointsConfig ?? {}, String(rec.hostConfig.NetworkMode ?? ""), network!, b.EndpointConfig ?? {}));
    return c.body(null, 200);
  });

  app.post("/networks/:id{.+}/disconnect", async (c) => {
    const b = await body(c.req.raw, DisconnectSchema);
    const rec = deps.containers.get(b.Container);
    const { network } = await netd().inspect({ network: c.req.param("id") });
    const attached = (await netd().getAttachment({ containerId: rec.id })).attachment;
    if (!attached && !b.Force) {
      // A container that is not running is connected to what its config names.
      const configured = [String(rec.hostConfig.NetworkMode), ...Object.keys(rec.endpointsConfig ?? {})].map((n) => (n === "default" ? "bridge" : n));
      const pending = network!.containers.some((x) => x.containerId === rec.id);
      if (!configured.some((n) => n === network!.name || n === network!.id) && !pending) {
        throw new ArcboxError("permission_denied", `container ${rec.id} is not connected to network ${network!.name}`);
      }
    }
    await netd().disconnect({ containerId: rec.id, network: network!.id, force: b.Force ?? false });
    await recordChange(rec.id, (r) => withoutEndpoint(r.endpointsConfig ?? {}, String(r.hostConfig.NetworkMode ?? ""), network!));
    return c.body(null, 200);
  });

  return app;
}
