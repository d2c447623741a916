/**
 * The foundation end to end: `arcbox start/stop/status`, the supervisor's restarts and
 * lock, lazy services, debug sockets, and the real docker CLI against the Docker socket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";

const d = new TestDaemon();
beforeAll(() => d.start());
afterAll(() => d.dispose());

async function status(): Promise<Map<string, { state: string; pid: string; restarts: string }>> {
  const r = await d.arcbox(["status"]);
  expect(r.code).toBe(0);
  const rows = new Map<string, { state: string; pid: string; restarts: string }>();
  for (const line of r.stdout.split("\n")) {
    const m = /^(\w+)\s+(\w+)\s+(\S+)\s+(\d+)/.exec(line);
    if (m && m[1] !== "SERVICE") rows.set(m[1]!, { state: m[2]!, pid: m[3]!, restarts: m[4]! });
  }
  return rows;
}

function rawRequest(socket: string, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = createConnection(socket);
    let out = "";
    c.on("data", (b) => (out += b.toString()));
    c.on("end", () => resolve(out));
    c.on("error", reject);
    c.write(payload);
  });
}

describe("docker CLI against ArcBox", () => {
  test("docker version reports the ArcBox engine and API 1.50", async () => {
    const r = await d.docker(["version", "--format", "{{json .Server}}"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const server = JSON.parse(r.stdout);
    expect(server.Platform.Name).toStartWith("ArcBox");
    expect(server.ApiVersion).toBe("1.50");
    expect(server.MinAPIVersion).toBe("1.24");
    expect(server.KernelVersion).toBe(readFileSync("/proc/sys/kernel/osrelease", "utf8").trim());
  });

  test("docker info shows real host values", async () => {
    const r = await d.docker(["info", "--format", "{{json .}}"]);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.NCPU).toBe(navigator.hardwareConcurrency);
    expect(info.MemTotal).toBe(require("node:os").totalmem());
    expect(info.Driver).toBe("overlay2");
    expect(info.OSType).toBe("linux");
    expect(info.OperatingSystem).toContain("Debian");
    expect(info.DockerRootDir).toBe(join(d.home, "data"));
    // The ID is stable across calls (persisted by apid).
    const again = JSON.parse((await d.docker(["info", "--format", "{{json .}}"])).stdout);
    expect(again.ID).toBe(info.ID);
    expect(info.ID).toMatch(/^[0-9A-F-]{36}$/);
  });

  test("the docker socket is mode 0660", () => {
    expect(statSync(d.socket).mode & 0o777).toBe(0o660);
  });

  test("HEAD and GET /_ping answer with the API version header", async () => {
    for (const method of ["GET", "HEAD"]) {
      const res = await d.api("/_ping", { method });
      expect(res.status).toBe(200);
      expect(res.headers.get("api-version")).toBe("1.50");
      expect(await res.text()).toBe(method === "GET" ? "OK" : "");
    }
  });
});

describe("bad input gets a Docker-style JSON error", () => {
  test("an API version outside the supported range is a 400", async () => {
    for (const [path, fragment] of [
      ["/v1.12/version", "too old"],
      ["/v1.99/info", "too new"],
    ]) {
      const res = await d.api(path!);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toContain(fragment!);
    }
  });

  test("an unimplemented endpoint is a JSON 404", async () => {
    const res = await d.api("/v1.50/no/such/endpoint");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(((await res.json()) as { message: string }).message).toContain("page not found");
  });

  test("garbage on the socket gets a JSON 400 and the daemon keeps serving", async () => {
    const reply = await rawRequest(d.socket, "THIS IS NOT HTTP\r\n\r\n");
    expect(reply).toStartWith("HTTP/1.1 400");
    expect(reply).toContain('{"message":"malformed HTTP request');
    expect((await d.api("/_ping")).status).toBe(200);
  });

  test("an upgrade request to an unknown endpoint is a JSON 404, not a hang", async () => {
    const reply = await rawRequest(d.socket, "POST /v1.50/nothing/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
    expect(reply).toStartWith("HTTP/1.1 404");
    expect(reply).toContain('"message"');
  });
});

describe("supervisor", () => {
  test("lazy services are idle until first use, then start on demand", async () => {
    const before = await status();
    expect(before.get("apid")!.state).toBe("ready");
    expect(before.get("fsd")!.state).toBe("idle");
    const res = await fetch("http://x/health", { unix: join(d.home, "run", "apid.debug.sock") } as RequestInit);
    expect(await res.json()).toMatchObject({ status: "ok", service: "apid" });
    // docker info needs the image count: apid has imaged activated over its supervisor channel.
    expect((await d.docker(["info"])).code).toBe(0);
    expect((await status()).get("imaged")!.state).toBe("ready");
  });

  test("each service serves health, a state dump and Prometheus metrics on its debug socket", async () => {
    const sock = join(d.home, "run", "apid.debug.sock");
    const get = (p: string) => fetch(`http://x${p}`, { unix: sock } as RequestInit);
    expect((await get("/health")).status).toBe(200);
    expect(await (await get("/state")).json()).toHaveProperty("dockerSocket");
    const metrics = await (await get("/metrics")).text();
    expect(metrics).toMatch(/^process_resident_memory_bytes \d+$/m);
    expect(metrics).toMatch(/^arcbox_apid_docker_requests_total\{method="GET",status="200"\} \d+$/m);
    const sup = await fetch("http://x/state", { unix: join(d.home, "run", "supervisor.debug.sock") } as RequestInit);
    expect(((await sup.json()) as { services: unknown[] }).services.length).toBe(5);
  });

  test("a service killed with SIGKILL is restarted and the socket answers again", async () => {
    const before = (await status()).get("apid")!;
    process.kill(Number(before.pid), "SIGKILL");
    const after = await waitFor("apid restart", async () => {
      const s = (await status()).get("apid")!;
      return s.state === "ready" && s.pid !== before.pid ? s : undefined;
    });
    expect(Number(after.restarts)).toBe(Number(before.restarts) + 1);
    const r = await d.docker(["version", "--format", "{{.Server.APIVersion}}"]);
    expect(r.stdout.trim()).toBe("1.50");
    const log = readFileSync(join(d.home, "log", "supervisor.log"), "utf8");
    expect(log).toMatch(/service apid exited unexpectedly \(signal SIGKILL\); restarting in \d+ ms/);
  });

  test("a second daemon on the same home is refused with a clear message", async () => {
    const r = await d.arcbox(["daemon"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("another ArcBox daemon");
    expect(r.stderr).toContain(d.home);
    // The running daemon is untouched.
    expect((await d.api("/_ping")).status).toBe(200);
  });

  test("arcbox logs shows a service's log", async () => {
    const r = await d.arcbox(["logs", "apid"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("[apid] ready");
    expect((await d.arcbox(["logs", "nosuch"])).code).toBe(1);
  });
});

describe("crash recovery", () => {
  test("a stale socket and lock left by a killed daemon do not block the next start", async () => {
    const c = new TestDaemon();
    try {
      await c.start();
      const pid = Number(readFileSync(join(c.home, "run", "arcboxd.lock"), "utf8"));
      const services = (await c.arcbox(["status"])).stdout;
      const apidPid = Number(/^apid\s+\w+\s+(\d+)/m.exec(services)![1]);
      process.kill(pid, "SIGKILL");
      // Services notice their supervisor is gone (IPC channel closed) and exit.
      await waitFor("apid to exit", async () => {
        try {
          process.kill(apidPid, 0);
          return undefined;
        } catch {
          return true;
        }
      });
      // The crash left the socket files behind.
      expect(statSync(join(c.home, "run", "supervisor.sock")).isSocket()).toBe(true);
      await c.start();
      expect((await c.docker(["version", "--format", "{{.Server.APIVersion}}"])).stdout.trim()).toBe("1.50");
    } finally {
      await c.dispose();
    }
  });

  test("arcbox stop stops every service and removes the sockets", async () => {
    const c = new TestDaemon();
    try {
      await c.start();
      expect((await c.arcbox(["stop"])).stdout).toContain("ArcBox stopped");
      expect(() => statSync(c.socket)).toThrow();
      expect(() => statSync(join(c.home, "run", "supervisor.sock"))).toThrow();
      expect((await c.arcbox(["status"])).code).toBe(1);
    } finally {
      await c.dispose();
    }
  });
});

test("arcbox docker enable/disable manage the docker context", async () => {
  const config = mkdtempSync(join(tmpdir(), "arcbox-dockercfg-"));
  const env = { DOCKER_CONFIG: config };
  try {
    expect((await d.arcbox(["docker", "enable"], { env })).code).toBe(0);
    const r = await run(["docker", "--context", "arcbox", "version", "--format", "{{.Server.Platform.Name}}"], { env });
    expect(r.stdout).toStartWith("ArcBox");
    await run(["docker", "context", "use", "arcbox"], { env });
    expect((await run(["docker", "version", "--format", "{{.Server.Platform.Name}}"], { env })).stdout).toStartWith("ArcBox");
    expect((await d.arcbox(["docker", "disable"], { env })).code).toBe(0);
    expect((await run(["docker", "context", "inspect", "arcbox"], { env })).code).not.toBe(0);
    expect((await run(["docker", "context", "show"], { env })).stdout.trim()).toBe("default");
  } finally {
    rmSync(config, { recursive: true, force: true });
  }
});
