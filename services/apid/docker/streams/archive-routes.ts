/**
 * docker cp (GET/HEAD/PUT /containers/{id}/archive), docker export and docker diff.
 * Container paths are resolved inside the container root (core/safe-path.ts); tar runs
 * as a child process on the resolved host path, never following links out of it.
 */
import { Hono } from "hono";
import { lstatSync, mkdirSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { copyIntoRoot, goFileMode } from "../../core/archive-copy.ts";
import { ContainerError } from "../../core/container-error.ts";
import type { ContainerRecord } from "../../core/container-record.ts";
import { acquireRootfs, type RootfsHandle } from "../../core/rootfs-access.ts";
import { upperChanges } from "../../core/rootfs-changes.ts";
import { resolveInRoot } from "../../core/safe-path.ts";
import type { DockerEnv } from "../app.ts";
import type { DockerApiDeps } from "../deps.ts";

function statHeader(hostPath: string, containerPath: string) {
  let st;
  try {
    st = lstatSync(hostPath);
  } catch {
    return undefined;
  }
  const stat = { name: basename(containerPath) || "/", size: st.size, mode: goFileMode(st.mode), mtime: st.mtime.toISOString(), linkTarget: st.isSymbolicLink() ? readlinkSync(hostPath) : "" };
  return Buffer.from(JSON.stringify(stat)).toString("base64");
}

/** Streams a child process's stdout, releasing the rootfs when it ends. */
function processStream(argv: string[], handle: RootfsHandle): ReadableStream<Uint8Array> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "ignore" });
  const reader = p.stdout.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      const { done, value } = await reader.read();
      if (value) ctrl.enqueue(value);
      if (done) {
        await p.exited;
        await handle.release();
        ctrl.close();
      }
    },
    async cancel() {
      p.kill();
      await p.exited;
      await handle.release();
    },
  });
}

export function archiveRoutes(deps: DockerApiDeps) {
  const app = new Hono<DockerEnv>();
  const { containers } = deps;
  const tmp = () => join(containers.containerDir(""), "..", "tmp");

  const resolvePath = (rec: ContainerRecord, root: string, path: string) => {
    if (!path) throw new ContainerError("invalid_argument", "path is required");
    const follow = path.endsWith("/") || path.endsWith("/.");
    const abs = path.startsWith("/") ? path : `/${rec.config.WorkingDir || ""}/${path}`;
    return resolveInRoot(root, abs, follow);
  };

  const statOr404 = (rec: ContainerRecord, hostPath: string, path: string) => {
    const header = statHeader(hostPath, path);
    if (!header) throw new ContainerError("not_found", `Could not find the file ${path} in container ${rec.name.slice(1)}`);
    return header;
  };

  app.on("HEAD", "/containers/:id/archive", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const path = c.req.query("path") ?? "";
    const h = await acquireRootfs(rec, tmp(), false);
    try {
      const header = statOr404(rec, resolvePath(rec, h.root, path), path);
      return new Response(null, { status: 200, headers: { "X-Docker-Container-Path-Stat": header, "Content-Type": "application/json" } });
    } finally {
      await h.release();
    }
  });

  app.get("/containers/:id/archive", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const path = c.req.query("path") ?? "";
    const h = await acquireRootfs(rec, tmp(), false);
    try {
      const host = resolvePath(rec, h.root, path);
      const header = statOr404(rec, host, path);
      const parent = dirname(host);
      const base = basename(host);
      const argv = host === h.root ? ["tar", "--numeric-owner", "-C", h.root, "-cf", "-", "."] : ["tar", "--numeric-owner", "-C", parent, "-cf", "-", base];
      return new Response(processStream(argv, h), { headers: { "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": header } });
    } catch (err) {
      await h.release();
      throw err;
    }
  });

  app.put("/containers/:id/archive", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const path = c.req.query("path") ?? "";
    if (rec.hostConfig.ReadonlyRootfs) throw new ContainerError("conflict", "container rootfs is marked read-only");
    const staging = mkdtempSync(join((mkdirSync(tmp(), { recursive: true, mode: 0o700 }), tmp()), "cp-"));
    try {
      // Unpack into private staging first; GNU tar rejects `..` members and absolute names.
      const p = Bun.spawn(["tar", "-x", "--no-overwrite-dir", ...(c.req.query("copyUIDGID") === "1" ? ["--same-owner", "--numeric-owner"] : ["--no-same-owner"]), "-C", staging, "-f", "-"], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
      const body = c.req.raw.body;
      if (body) for await (const chunk of body) p.stdin.write(chunk);
      await p.stdin.end();
      const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
      if (code !== 0) throw new ContainerError("invalid_argument", `invalid tar archive: ${err.trim()}`);
      await containers.withLock(rec.id, async () => {
        const h = await acquireRootfs(rec, tmp(), true);
        try {
          const dest = resolvePath(rec, h.root, path.endsWith("/") ? path : `${path}/`);
          const st = (() => {
            try {
              return lstatSync(dest);
            } catch {
              return undefined;
            }
          })();
          if (!st) throw new ContainerError("not_found", `Could not find the file ${path} in container ${rec.name.slice(1)}`);
          if (!st.isDirectory()) throw new ContainerError("invalid_argument", `extraction point is not a directory`);
          copyIntoRoot(staging, h.root, dest.slice(h.root.length) || "/", { noOverwriteDirNonDir: c.req.query("noOverwriteDirNonDir") === "1" || c.req.query("noOverwriteDirNonDir") === "true", keepOwner: c.req.query("copyUIDGID") === "1" });
        } finally {
          await h.release();
        }
      });
      containers.bus.publish("container", "extract-to-dir", rec.id, { image: rec.imageRef, name: rec.name.slice(1) });
      return c.body(null, 200);
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });

  app.get("/containers/:id/export", async (c) => {
    const rec = containers.get(c.req.param("id"));
    const h = await acquireRootfs(rec, tmp(), false);
    containers.bus.publish("container", "export", rec.id, { image: rec.imageRef, name: rec.name.slice(1) });
    return new Response(processStream(["tar", "--numeric-owner", "--one-file-system", "-C", h.root, "-cf", "-", "."], h), { headers: { "Content-Type": "application/x-tar" } });
  });

  app.get("/containers/:id/changes", (c) => {
    const rec = containers.get(c.req.param("id"));
    const changes = upperChanges(rec.rootfs.upperDir, rec.rootfs.lowerDirs);
    return c.json(changes.length ? changes : null);
  });

  return app;
}
