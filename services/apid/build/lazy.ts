/**
 * docker build's routes in front of its code: the builder, its cache (a SQLite
 * database), the Dockerfile parser and the context unpacker load on the first build
 * request. An apid that never builds keeps none of it in memory (~3 MB).
 *
 * What must happen at start does: contexts and layers a crash left behind (on disk, and
 * in /dev/shm, which is memory) are removed now, not at the first build.
 */
import { Hono } from "hono";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { DockerEnv } from "../docker/app.ts";
import { checkBuildPruneQuery } from "../docker/build-prune-query.ts";
import { cleanStale } from "./context.ts";
import type { BuildService, BuildServiceDeps } from "./route.ts";

/** Where builds stage contexts and layers: on disk, and a tmpfs directory per home. */
export function buildDirs(dataDir: string): { tmpBase: string; fastBase: string | undefined } {
  return {
    tmpBase: join(dataDir, "build"),
    fastBase: existsSync("/dev/shm") ? join("/dev/shm", `arcbox-build-${new Bun.CryptoHasher("sha256").update(dataDir).digest("hex").slice(0, 12)}`) : undefined,
  };
}

export class LazyBuilds {
  private service: Promise<BuildService> | undefined;

  constructor(private readonly deps: BuildServiceDeps) {
    const dirs = buildDirs(deps.dataDir);
    cleanStale(dirs.tmpBase);
    if (dirs.fastBase) cleanStale(dirs.fastBase);
  }

  get(): Promise<BuildService> {
    this.service ??= import("./route.ts").then(({ BuildService }) => new BuildService(this.deps));
    return this.service;
  }

  async close(): Promise<void> {
    if (this.service) (await this.service).close();
  }
}

export function buildRoutes(builds: LazyBuilds): Hono<DockerEnv> {
  const app = new Hono<DockerEnv>();
  app.post("/build", async (c) => (await builds.get()).build(c.req.raw));
  app.post("/build/prune", async (c) => {
    checkBuildPruneQuery((name) => c.req.query(name));
    return c.json(await (await builds.get()).prune());
  });
  app.post("/build/cancel", (c) => c.body(null, 200));
  return app;
}
