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

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

export async function startRegistry(opts: { auth?: { username: string; password: string } } = {}): Promise<TestRegistry> {
  const dir = mkdtempSync(join(tmpdir(), "arcbox-registry-"));
  const port = await freePort();
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
  addr: 127.0.0.1:${port}
${authBlock}`,
  );
  const proc = Bun.spawn(["docker-registry", "serve", join(dir, "config.yml")], { stdout: "ignore", stderr: Bun.file(join(dir, "registry.log")) });
  const url = `http://127.0.0.1:${port}`;
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
    host: `127.0.0.1:${port}`,
    url,
    auth: opts.auth,
    async stop() {
      proc.kill();
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
