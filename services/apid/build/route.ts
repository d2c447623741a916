/**
 * POST /build (the classic builder's API, which the docker CLI without buildx,
 * docker-compose 1.x and docker-py use) and POST /build/prune. Query parameters are
 * checked here; the context is unpacked and the Dockerfile parsed before answering,
 * so those errors are plain HTTP errors as in Docker; later ones are `errorDetail`
 * lines in the stream.
 */
import { rmSync } from "node:fs";
import { z } from "zod";
import type { Logger } from "../../../lib/log.ts";
import { ArcboxError } from "../../../lib/errors.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import { call, type Backends } from "../core/backends.ts";
import type { StepContainers } from "./run-step.ts";
import { BuildCache } from "./cache.ts";
import { Builder, type BuildOptions } from "./builder.ts";
import { openContext } from "./context.ts";
import { buildDirs } from "./lazy.ts";
import { BuildError } from "./errors.ts";
import { BuildOutput, shortId } from "./output.ts";

export interface BuildServiceDeps {
  backends: Backends;
  containers: StepContainers;
  dataDir: string;
  log: Logger;
}

const stringMap = z.record(z.string(), z.string().nullable());
const flag = (v: string | undefined) => v === "1" || v === "true" || v === "True";
const int = (name: string, v: string | undefined): number | undefined => {
  if (v === undefined || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new BuildError(`invalid value for ${name}: ${v}`);
  return n;
};

function jsonParam<T>(name: string, v: string | undefined, schema: z.ZodType<T>, fallback: T): T {
  if (!v) return fallback;
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw new BuildError(`invalid ${name}: not JSON`);
  }
  const r = schema.safeParse(parsed ?? fallback);
  if (!r.success) throw new BuildError(`invalid ${name}: ${r.error.issues[0]?.message ?? "bad value"}`);
  return r.data;
}

/** repo[:tag] as Docker names it in "Successfully tagged". */
function normalizeTag(t: string): string {
  if (!/^[a-z0-9]+(?:[._-]+[a-z0-9]+|\/|:\d+\/)*(?::[\w][\w.-]{0,127})?$/.test(t.replace(/^([a-zA-Z0-9.-]+(:\d+)?\/)/, (m) => m.toLowerCase()).replace(/^[^/]*[.:][^/]*\//, "x/"))) {
    throw new BuildError(`invalid tag "${t}": invalid reference format`);
  }
  const lastSlash = t.lastIndexOf("/");
  return t.slice(lastSlash + 1).includes(":") ? t : `${t}:latest`;
}

function parseOptions(url: URL): BuildOptions {
  const q = url.searchParams;
  const get = (k: string) => q.get(k) ?? undefined;
  if (get("remote")) throw new BuildError("building from a remote context (remote=) is not supported by ArcBox; send the context as the request body");
  if (get("version") === "2") throw new BuildError("BuildKit (version=2) is not supported by ArcBox; use the classic builder (DOCKER_BUILDKIT=0)");
  const tags = q.getAll("t").filter(Boolean).map(normalizeTag);
  const extraHosts = q
    .getAll("extrahosts")
    .flatMap((h) => h.split(","))
    .filter(Boolean);
  return {
    dockerfile: get("dockerfile") ?? "",
    tags,
    buildArgs: jsonParam("buildargs", get("buildargs"), stringMap, {}),
    labels: jsonParam("labels", get("labels"), z.record(z.string(), z.string()), {}),
    target: get("target") ?? "",
    noCache: flag(get("nocache")),
    pull: flag(get("pull")),
    rm: get("rm") === undefined ? true : flag(get("rm")),
    forceRm: flag(get("forcerm")),
    cacheFrom: jsonParam("cachefrom", get("cachefrom"), z.array(z.string()), []),
    platform: get("platform") ?? "",
    limits: {
      networkMode: get("networkmode") ?? "",
      extraHosts,
      shmSize: int("shmsize", get("shmsize")),
      memory: int("memory", get("memory")),
      memorySwap: get("memswap") === "-1" ? undefined : int("memswap", get("memswap")),
      cpuShares: int("cpushares", get("cpushares")),
      cpuSetCpus: get("cpusetcpus"),
      cpuSetMems: get("cpusetmems"),
      cpuPeriod: int("cpuperiod", get("cpuperiod")),
      cpuQuota: int("cpuquota", get("cpuquota")),
    },
  };
}

export class BuildService {
  readonly cache: BuildCache;
  readonly tmpBase: string;
  /** tmpfs directory for small contexts and their staged layers (per home). */
  readonly fastBase: string | undefined;

  constructor(readonly deps: BuildServiceDeps) {
    // Stale contexts and layers were removed at apid's start (lazy.ts).
    this.cache = new BuildCache(deps.dataDir);
    ({ tmpBase: this.tmpBase, fastBase: this.fastBase } = buildDirs(deps.dataDir));
  }

  async build(req: Request): Promise<Response> {
    const opts = parseOptions(new URL(req.url));
    const q = new URL(req.url).searchParams;
    const ctx = await openContext(req.body, { disk: this.tmpBase, fast: this.fastBase }, opts.dockerfile);
    let builder: Builder;
    let out!: BuildOutput;
    const pending: Uint8Array[] = [];
    let sink: (b: Uint8Array) => void = (b) => pending.push(b);
    try {
      out = new BuildOutput((b) => sink(b), flag(q.get("q") ?? undefined));
      builder = new Builder({ backends: this.deps.backends, containers: this.deps.containers, cache: this.cache, tmpBase: this.tmpBase, log: this.deps.log }, opts, out, ctx.dockerfile, ctx.dir);
    } catch (err) {
      ctx.dispose();
      throw err;
    }
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        sink = (b) => controller.enqueue(b);
        for (const b of pending.splice(0)) controller.enqueue(b);
        void this.drive(builder, out, opts)
          .finally(() => {
            ctx.dispose();
            out.close();
            try {
              controller.close();
            } catch {}
          })
          .catch(() => {});
      },
      cancel: () => builder.cancel(),
    });
    return new Response(body, { headers: { "Content-Type": "application/json" } });
  }

  private async drive(builder: Builder, out: BuildOutput, opts: BuildOptions): Promise<void> {
    try {
      const id = await builder.run();
      out.aux({ ID: id });
      out.stream(`Successfully built ${shortId(id)}\n`);
      out.always(out.quietMode ? `${id}\n` : "");
      for (const t of opts.tags) {
        await call(() => this.deps.backends.images.tag({ source: id, target: t }));
        out.stream(`Successfully tagged ${t}\n`);
      }
    } catch (err) {
      const e = err instanceof ArcboxError ? err : fromConnectError(err);
      if (!(e instanceof BuildError)) this.deps.log.warn("build failed", { error: e });
      out.error(e.message);
    }
  }

  /** POST /build/prune: the cached step images nothing else needs (never a tagged one). */
  async prune(): Promise<{ CachesDeleted: string[]; SpaceReclaimed: number }> {
    const images = this.deps.backends.images;
    const before = await call(() => images.list({ filters: [] }));
    const deleted: string[] = [];
    for (const entry of this.cache.all()) {
      let tagged = false;
      try {
        const img = await call(() => images.inspect({ reference: entry.imageId }));
        tagged = img.repoTags.length > 0;
      } catch (err) {
        if (!(err instanceof ArcboxError && err.code === "not_found")) throw err;
        this.cache.delete(entry.key);
        continue;
      }
      if (tagged) continue;
      try {
        await call(() => images.remove({ reference: entry.imageId, force: false, noPrune: false }));
        deleted.push(entry.imageId);
      } catch (err) {
        // In use by a container: kept, as Docker keeps cache that is in use.
        if (!(err instanceof ArcboxError && (err.code === "conflict" || err.code === "not_found" || err.code === "failed_precondition"))) throw err;
        if (err.code === "not_found") deleted.push(entry.imageId);
        else continue;
      }
      this.cache.delete(entry.key);
    }
    const after = await call(() => images.list({ filters: [] }));
    return { CachesDeleted: [...new Set(deleted)], SpaceReclaimed: Math.max(0, Number(before.storeSize - after.storeSize)) };
  }

  close(): void {
    this.cache.close();
    if (this.fastBase) rmSync(this.fastBase, { recursive: true, force: true });
  }
}

export { BuildError };
