/**
 * Testcontainers for Node (npm `testcontainers`, dockerode underneath) against a real
 * ArcBox daemon, as a user's test suite would use it: DOCKER_HOST at the daemon's socket,
 * the reaper (Ryuk) disabled, and only local busybox-based images (no Docker Hub).
 *
 * It runs in Bun's own test runner: testcontainers' dockerode, docker-modem and undici
 * work over the unix socket under Bun (testcontainers 12 asks for node >= 22, and
 * Debian's node is 20, so Bun is also the runtime that fits).
 *
 * Compose: testcontainers 12 runs `docker compose` (v2) unless told to use a standalone
 * binary; the docker CLI here has no compose plugin, so the test points it at Debian's
 * docker-compose 1.29 (`withClientOptions({ executable: { standalone: true } })`), which
 * names containers `<project>_<service>_1`.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

type TC = typeof import("testcontainers");

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;
let tc: TC;
let work: string;
const savedEnv: Record<string, string | undefined> = {};

/** An httpd serving /www/index.html ("hello from <name>") on port 8080. */
const httpd = (name: string) => ["sh", "-c", `mkdir -p /www && echo "hello from ${name}" > /www/index.html && exec httpd -f -p 8080 -h /www`];

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-tc-");
  d = fx.d;
  IMG = fx.image;
  work = mkdtempSync(join(tmpdir(), "arcbox-tc-work-"));
  // testcontainers reads its configuration from the environment once, at its first call.
  for (const k of ["DOCKER_HOST", "TESTCONTAINERS_RYUK_DISABLED", "TESTCONTAINERS_HOST_OVERRIDE"]) savedEnv[k] = process.env[k];
  process.env.DOCKER_HOST = d.dockerHost;
  process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
  delete process.env.TESTCONTAINERS_HOST_OVERRIDE;
  tc = await import("testcontainers");
}, 120_000);

afterAll(async () => {
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await fx?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
}, 60_000);

async function get(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  return res.text();
}

describe("wait strategies", () => {
  test("exposed port with the default wait (host port, then /bin/sh checks inside busybox)", async () => {
    const c = await new tc.GenericContainer(IMG).withCommand(httpd("default")).withExposedPorts(8080).start();
    try {
      expect(await get(`http://${c.getHost()}:${c.getMappedPort(8080)}/index.html`)).toBe("hello from default\n");
    } finally {
      await c.stop();
    }
  });

  test("the default wait fails (within its timeout) when nothing listens on the port", async () => {
    const started = new tc.GenericContainer(IMG).withCommand(["sleep", "1000"]).withExposedPorts(8080).withStartupTimeout(3_000).start();
    expect(started).rejects.toThrow(/[Pp]ort/);
    await started.catch(() => {});
  });

  test("log message wait, counted", async () => {
    const c = await new tc.GenericContainer(IMG)
      .withCommand(["sh", "-c", "echo starting; sleep 0.3; echo ready; sleep 0.3; echo ready; exec sleep 1000"])
      .withWaitStrategy(tc.Wait.forLogMessage("ready", 2))
      .start();
    try {
      const logs = await d.docker(["logs", c.getId()]);
      expect(logs.stdout).toBe("starting\nready\nready\n");
    } finally {
      await c.stop();
    }
  });

  test("health-check wait: healthy once the check passes, fails on unhealthy", async () => {
    const c = await new tc.GenericContainer(IMG)
      .withCommand(["sh", "-c", "sleep 0.5; touch /tmp/ok; exec sleep 1000"])
      .withHealthCheck({ test: ["CMD-SHELL", "test -f /tmp/ok"], interval: 200, timeout: 1_000, retries: 30, startPeriod: 0 })
      .withWaitStrategy(tc.Wait.forHealthCheck())
      .start();
    try {
      const inspect = await fetch(`http://docker/containers/${c.getId()}/json`, { unix: d.socket } as RequestInit).then((r) => r.json() as Promise<{ State: { Health: { Status: string } } }>);
      expect(inspect.State.Health.Status).toBe("healthy");
    } finally {
      await c.stop();
    }
    const bad = new tc.GenericContainer(IMG)
      .withCommand(["sleep", "1000"])
      .withHealthCheck({ test: ["CMD", "false"], interval: 100, timeout: 1_000, retries: 2, startPeriod: 0 })
      .withWaitStrategy(tc.Wait.forHealthCheck())
      .withStartupTimeout(20_000)
      .start();
    expect(bad).rejects.toThrow(/unhealthy/i);
    await bad.catch(() => {});
  });

  test("HTTP wait on busybox httpd", async () => {
    const c = await new tc.GenericContainer(IMG)
      .withCommand(["sh", "-c", `sleep 0.5; ${httpd("http").at(-1)}`])
      .withExposedPorts(8080)
      .withWaitStrategy(
        tc.Wait.forHttp("/index.html", 8080)
          .forStatusCode(200)
          .forResponsePredicate((body) => body.includes("hello from http")),
      )
      .start();
    try {
      expect(await get(`http://${c.getHost()}:${c.getMappedPort(8080)}/index.html`)).toBe("hello from http\n");
    } finally {
      await c.stop();
    }
  });
});

describe("containers", () => {
  test("a network with aliases: two containers talk by alias", async () => {
    const net = await new tc.Network().start();
    try {
      const web = await new tc.GenericContainer(IMG).withCommand(httpd("web")).withExposedPorts(8080).withNetwork(net).withNetworkAliases("web", "www").start();
      try {
        const client = await new tc.GenericContainer(IMG).withCommand(["sleep", "1000"]).withNetwork(net).start();
        try {
          for (const alias of ["web", "www"]) {
            const r = await client.exec(["wget", "-qO-", `http://${alias}:8080/index.html`]);
            expect(r.output).toBe("hello from web\n");
            expect(r.exitCode).toBe(0);
          }
          // With aliases testcontainers creates on the default bridge, then connects with them (as with Docker).
          expect(web.getNetworkNames().sort()).toEqual(["bridge", net.getName()].sort());
          expect(web.getIpAddress(net.getName())).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
        } finally {
          await client.stop();
        }
      } finally {
        await web.stop();
      }
    } finally {
      await net.stop();
    }
  });

  test("copy files and content into a running container, at / and below", async () => {
    const src = join(work, "copied.txt");
    writeFileSync(src, "from a file\n");
    const c = await new tc.GenericContainer(IMG).withCommand(["sleep", "1000"]).start();
    try {
      await c.copyContentToContainer([
        { content: "at the root\n", target: "/root-file.txt" },
        { content: Buffer.from("in a new dir\n"), target: "/new/dir/file.txt", mode: 0o600 },
      ]);
      await c.copyFilesToContainer([{ source: src, target: "/copied.txt" }]);
      expect((await c.exec(["cat", "/root-file.txt", "/new/dir/file.txt", "/copied.txt"])).output).toBe("at the root\nin a new dir\nfrom a file\n");
      expect((await c.exec(["stat", "-c", "%a %u", "/new/dir/file.txt"])).output).toBe("600 0\n");
    } finally {
      await c.stop();
    }
  });

  test("ulimits and bind mounts", async () => {
    const dir = join(work, "bind");
    mkdirSync(dir);
    writeFileSync(join(dir, "in.txt"), "from the host\n");
    const c = await new tc.GenericContainer(IMG)
      .withCommand(["sleep", "1000"])
      .withUlimits({ nofile: { soft: 100, hard: 200 } })
      .withBindMounts([
        { source: dir, target: "/ro", mode: "ro" },
        { source: dir, target: "/rw" },
      ])
      .start();
    try {
      expect((await c.exec(["sh", "-c", "ulimit -n; ulimit -Hn"])).output).toBe("100\n200\n");
      expect((await c.exec(["cat", "/ro/in.txt"])).output).toBe("from the host\n");
      expect((await c.exec(["sh", "-c", "echo x > /ro/new"])).exitCode).not.toBe(0);
      expect((await c.exec(["sh", "-c", "echo back > /rw/out.txt"])).exitCode).toBe(0);
      expect(await Bun.file(join(dir, "out.txt")).text()).toBe("back\n");
    } finally {
      await c.stop();
    }
  });

  test("restart: the same container runs again and its port answers", async () => {
    const c = await new tc.GenericContainer(IMG).withCommand(httpd("restart")).withExposedPorts(8080).start();
    try {
      const before = await fetch(`http://docker/containers/${c.getId()}/json`, { unix: d.socket } as RequestInit).then((r) => r.json() as Promise<{ State: { StartedAt: string } }>);
      await c.restart();
      const after = await fetch(`http://docker/containers/${c.getId()}/json`, { unix: d.socket } as RequestInit).then((r) => r.json() as Promise<{ State: { StartedAt: string; Running: boolean } }>);
      expect(after.State.Running).toBe(true);
      expect(after.State.StartedAt).not.toBe(before.State.StartedAt);
      expect(await get(`http://${c.getHost()}:${c.getMappedPort(8080)}/index.html`)).toBe("hello from restart\n");
    } finally {
      await c.stop();
    }
  });

  test("GenericContainer.fromDockerfile(...).build() through the classic POST /build", async () => {
    const ctx = join(work, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "Dockerfile"), `FROM ${IMG}\nARG GREETING=hi\nCOPY msg.txt /msg.txt\nRUN echo "$GREETING built" >> /msg.txt\nCMD ["sh", "-c", "cat /msg.txt; exec sleep 1000"]\n`);
    writeFileSync(join(ctx, "msg.txt"), "copied\n");
    const image = await tc.GenericContainer.fromDockerfile(ctx).withBuildArgs({ GREETING: "hello" }).build("arcbox-tc-built:latest", { deleteOnExit: false });
    const c = await image.withWaitStrategy(tc.Wait.forLogMessage("hello built")).start();
    try {
      expect((await c.exec(["cat", "/msg.txt"])).output).toBe("copied\nhello built\n");
    } finally {
      await c.stop();
    }
  });
});

test("docker-compose: DockerComposeEnvironment with docker-compose 1.29 (standalone)", async () => {
  const dir = join(work, "compose");
  mkdirSync(dir);
  writeFileSync(
    join(dir, "docker-compose.yml"),
    `version: "3"
services:
  web:
    image: ${IMG}
    command: ${JSON.stringify(httpd("compose"))}
    ports: ["8080"]
  client:
    image: ${IMG}
    command: ["sleep", "1000"]
`,
  );
  const env = await new tc.DockerComposeEnvironment(dir, "docker-compose.yml")
    // The docker CLI here has no compose plugin; Debian ships docker-compose 1.29.
    .withClientOptions({ executable: { standalone: true, executablePath: "/usr/bin/docker-compose" } })
    .up();
  try {
    const names = (await d.docker(["ps", "--format", "{{.Names}}"])).stdout.trim().split("\n").sort();
    const web = names.find((n) => n.endsWith("_web_1"))!;
    const client = names.find((n) => n.endsWith("_client_1"))!;
    expect(web).toBeDefined();
    const w = env.getContainer(web);
    expect(await get(`http://${w.getHost()}:${w.getMappedPort(8080)}/index.html`)).toBe("hello from compose\n");
    expect((await env.getContainer(client).exec(["wget", "-qO-", "http://web:8080/index.html"])).output).toBe("hello from compose\n");
  } finally {
    await env.down({ timeout: 0 });
  }
  expect((await d.docker(["ps", "-a", "--format", "{{.Names}}"])).stdout).not.toMatch(/_(web|client)_1/);
});
