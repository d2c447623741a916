/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on a
 * loopback port, with its own storage, optionally behind htpasswd basic auth.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";

export interface TestRegistry {
  /** host:port, e.g. "127.0.0.1:35123". */
  host: string;
  url: string;
  auth?: { username: string; password: string };
  stop(): Promise<void>;
}

async function freePort(hostname = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, hostname, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export interface RegistryOptions {
  auth?: { username: string; password: string };
  /** Address to listen on (default 127.0.0.1), e.g. a bench peer namespace's host address. */
  hostname?: string;
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "arcbox-registry-"));
  const hostname = opts.hostname ?? "127.0.0.1";
  const port = await freePort(hostname);
  let authBlock = "";
  if (opts.auth) {
    const hash = await Bun.password.hash(opts.auth.password, { algorithm: "bcrypt", cost: 5 });
    writeFileSync(join(dir, "htpasswd"), `${opts.auth.username}:${hash.replace(/^\$2b\$/, "$2y$")}\n`);
    authBlock = `auth:\n  htpasswd:\n    realm: arcbox-test\n    path: ${join(dir, "htpasswd")}\n`;
  }
  writeFileSync(
    join(dir, "config.yml"),
    `version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: ${join(dir, "data")}
  delete:
    enabled: true
http:
  addr: ${hostname}:${port}
${authBlock}`,
  );
  const proc = Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: Bun.file(join(dir, "registry.log")) });
  const url = `http://${hostname}:${port}`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/v2/`);
      if (res.status === 200 || res.status === 401) break;
    } catch {}
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill();
      throw new Error(`docker-registry did not start on ${url} (see ${join(dir, "registry.log")})`);
    }
    await Bun.sleep(50);
  }
  return {
    host: `${hostname}:${port}`,
    url,
    auth: opts.auth,
    async stop() {
      proc.kill();
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RegistryProxy {
  host: string;
  url: string;
  /** Requests seen, as "METHOD /path". */
  requests: string[];
  stop(): Promise<void>;
}

export interface ProxyOptions {
  /** Require Bearer tokens from this proxy's own /token endpoint (Basic-authenticated with these credentials). */
  bearer?: { username: string; password: string };
  /** Cut the connection after sending this many bytes of any blob GET body. */
  cutBlobAfter?: number;
  /** Replace blob GET bodies with garbage of the same length (digest mismatch). */
  corruptBlobs?: boolean;
  /** Send blob GET bodies in 64 KiB pieces with this pause between them (a slow registry). */
  slowBlobsMs?: number;
}

/**
 * A loopback HTTP proxy in front of a test registry that can demand Bearer tokens
 * (the Docker Hub auth flow) or misbehave on blob downloads (cut, corrupt), for
 * auth and failure tests.
 */
export async function startRegistryProxy(upstream: TestRegistry, opts: ProxyOptions = {}): Promise<RegistryProxy> {
  const requests: string[] = [];
  const tokens = new Set<string>();
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const upstreamAuth = upstream.auth ? `Basic ${btoa(`${upstream.auth.username}:${upstream.auth.password}`)}` : undefined;
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port,
    idleTimeout: 0,
    async fetch(req) {
      const u = new URL(req.url);
      const range = req.headers.get("range");
      requests.push(`${req.method} ${u.pathname}${range ? ` range=${range}` : ""}`);
      if (u.pathname === "/token") {
        const b = opts.bearer!;
        if (req.headers.get("authorization") !== `Basic ${btoa(`${b.username}:${b.password}`)}`) return new Response('{"details":"incorrect username or password"}', { status: 401 });
        const token = crypto.randomUUID();
        tokens.add(token);
        return Response.json({ token, expires_in: 300 });
      }
      if (opts.bearer) {
        const auth = req.headers.get("authorization") ?? "";
        if (!auth.startsWith("Bearer ") || !tokens.has(auth.slice(7))) {
          return Response.json(
            { errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] },
            { status: 401, headers: { "WWW-Authenticate": `Bearer realm="${url}/token",service="arcbox-test"` } },
          );
        }
      }
      const headers = new Headers(req.headers);
      headers.delete("authorization");
      headers.delete("host");
      if (upstreamAuth) headers.set("authorization", upstreamAuth);
      const res = await fetch(`${upstream.url}${u.pathname}${u.search}`, { method: req.method, headers, body: req.body, redirect: "manual", duplex: "half" } as RequestInit);
      const outHeaders = new Headers(res.headers);
      const loc = outHeaders.get("location");
      if (loc) outHeaders.set("location", loc.replace(upstream.url, url));
      const isBlobGet = req.method === "GET" && /\/blobs\/sha256:/.test(u.pathname) && res.ok && res.body;
      if (isBlobGet && opts.corruptBlobs) {
        const n = Number(res.headers.get("content-length") ?? 0);
        await res.body!.cancel();
        return new Response(new Uint8Array(n).fill(0x5a), { status: 200, headers: outHeaders });
      }
      if (isBlobGet && opts.slowBlobsMs !== undefined) {
        const pause = opts.slowBlobsMs;
        const reader = res.body!.getReader();
        let pending: Uint8Array | undefined;
        const slow = new ReadableStream<Uint8Array>({
          async pull(controller) {
            let piece: Uint8Array = pending ?? new Uint8Array(0);
            if (piece.length === 0) {
              const r = await reader.read();
              if (r.done) return controller.close();
              piece = r.value ?? new Uint8Array(0);
            }
            await Bun.sleep(pause);
            controller.enqueue(piece.subarray(0, 65536));
            pending = piece.subarray(65536);
          },
          cancel: () => reader.cancel(),
        });
        return new Response(slow, { status: res.status, headers: outHeaders });
      }
      if (isBlobGet && opts.cutBlobAfter !== undefined) {
        const limit = opts.cutBlobAfter;
        const reader = res.body!.getReader();
        let sent = 0;
        const cut = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const { done, value } = await reader.read();
            if (done) return controller.close();
            if (sent + value.length >= limit) {
              controller.enqueue(value.subarray(0, Math.max(0, limit - sent)));
              await reader.cancel();
              // Ending the body short of its Content-Length makes the server drop the connection.
              controller.close();
              return;
            }
            sent += value.length;
            controller.enqueue(value);
          },
        });
        return new Response(cut, { status: res.status, headers: outHeaders });
      }
      return new Response(res.body, { status: res.status, headers: outHeaders });
    },
  });
  return {
    host: `127.0.0.1:${port}`,
    url,
    requests,
    async stop() {
      await server.stop(true);
    },
  };
}
