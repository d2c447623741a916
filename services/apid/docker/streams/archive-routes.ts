/**
 * docker cp (GET/HEAD/PUT /containers/{id}/archive), docker export and docker diff.
 * Every docker cp and export path is resolved and opened by a helper inside the
 * container's root (core/rootfs-cp.ts), never on the host; HEAD only stats.
 */
import { Hono } from "hono";
import { join } from "node:path";
import { goFileMode } from "../../core/go-file-mode.ts";
import { ContainerError } from "../../core/container-error.ts";
import type { ContainerRecord } from "../../core/container-record.ts";
import { archivePath, containerPath, exportRoot, extractToDir, statPath, type PathStat } from "../../core/rootfs-cp.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";

/** Go's filepath.Base, as Docker names the stat of a container path. */
function goBase(abs: string): string {
  const trimmed = abs.replace(/\/+$/, "");
  if (!trimmed) return "/";
  return trimmed.slice(trimmed.lastIndexOf("/") + 1) || ".";
}

/** Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped. */
function rfc3339Nano(sec: number, nsec: number): string {
  const base = new Date(sec * 1000).toISOString().slice(0, 19);
  const frac = nsec ? `.${String(nsec).padStart(9, "0").replace(/0+$/, "")}` : "";
  return `${base}${frac}Z`;
}

function statHeader(st: PathStat, abs: string): string {
  const stat = { name: goBase(abs), size: st.size, mode: goFileMode(st.mode), mtime: rfc3339Nano(st.mtime, st.mtimeNsec), linkTarget: st.linkTarget };
  return Buffer.from(JSON.stringify(stat)).toString("base64");
}

/** Docker's boolValue: anything but "", "0", "no", "false" and "none" is true. */
const truthy = (v: string | undefined) => !["", "0", "no", "false", "none"].includes((v ?? "").trim().toLowerCase());

export function archiveRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const { containers } = deps;
  const tmp = () => join(containers.containerDir(""), "..", "tmp");
  const target = (rec: ContainerRecord, path: string) => ({ rec, path, tmpBase: tmp(), helpers: containers.rootfsHelpers });
  const abs = (rec: ContainerRecord, path: string) => containerPath(path, rec.config.WorkingDir ?? "");

  // hono answers HEAD with the GET route (dropping the body), so both land here; HEAD
  // (sent by the docker CLI before every copy) must only stat: no tar, nothing to clean up.
  app.get("/containers/:id/archive", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const path = c.req.query("path") ?? "";
    if (c.req.method === "HEAD") {
      const st = await statPath(target(rec, path));
      return new Response(null, { status: 200, headers: { "X-Docker-Container-Path-Stat": statHeader(st, abs(rec, path)), "Content-Type": "application/json" } });
    }
    const { stat, tar } = await archivePath(target(rec, path));
    return new Response(tar, { headers: { "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": statHeader(stat, abs(rec, path)) } });
  });

  app.put("/containers/:id/archive", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const path = c.req.query("path") ?? "";
    if (rec.hostConfig.ReadonlyRootfs) throw new ContainerError("conflict", "container rootfs is marked read-only");
    const opts = { noOverwriteDirNonDir: truthy(c.req.query("noOverwriteDirNonDir")), copyUIDGID: truthy(c.req.query("copyUIDGID")) };
    // Locked, so a stopped container is not started while its layers are mounted for writing.
    await containers.withLock(rec.id, () => extractToDir(target(containers.get(rec.id), path), c.req.raw.body, opts));
    deps.events.publish("container", "extract-to-dir", rec.id, { image: rec.imageRef, name: rec.name.slice(1) });
    return c.body(null, 200);
  });

  app.get("/containers/:id/export", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const tar = await exportRoot(rec, tmp(), containers.rootfsHelpers);
    deps.events.publish("container", "export", rec.id, { image: rec.imageRef, name: rec.name.slice(1) });
    return new Response(tar, { headers: { "Content-Type": "application/x-tar" } });
  });

  app.get("/containers/:id/changes", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const changes = await containers.rootfsHelpers.changes(rec);
    return c.json(changes.length ? changes : null);
  });

  return app;
}
