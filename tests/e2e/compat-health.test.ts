/**
 * Health checks as dockerd runs them: Config.Healthcheck and `--health-*` run through
 * the exec path on a per-container timer while the container runs; State.Health with
 * status, failing streak and the last five results; `health_status` events; the
 * health in `docker ps` and its `health` filter; NONE and stopped/paused containers
 * run no checks.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { run, type TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-compat-health-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

const json = { "Content-Type": "application/json" };

async function must(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

interface Health {
  Status: string;
  FailingStreak: number;
  Log: { Start: string; End: string; ExitCode: number; Output: string }[];
}

async function healthOf(name: string): Promise<Health | undefined> {
  const view = (await (await d.api(`/containers/${name}/json`)).json()) as { State: { Health?: Health } };
  return view.State.Health;
}

const waitStatus = (name: string, status: string, timeoutMs = 20_000) => waitFor(`${name} ${status}`, async () => ((await healthOf(name))?.Status === status ? true : undefined), timeoutMs);

async function eventsSince(sinceSec: number, name: string): Promise<string[]> {
  const filters = encodeURIComponent(JSON.stringify({ container: [name] }));
  const text = await (await d.api(`/events?since=${sinceSec}&until=${Math.ceil(Date.now() / 1000) + 1}&filters=${filters}`)).text();
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { Action: string }).Action);
}

describe("health checks", () => {
  test("--health-cmd: starting, unhealthy after the retries, healthy again; events, ps status and filter", async () => {
    const since = Math.floor(Date.now() / 1000);
    await must([
      "run",
      "-d",
      "--name",
      "hc1",
      "--network",
      "none",
      "--health-cmd",
      "cat /tmp/ok",
      "--health-interval",
      "1s",
      "--health-retries",
      "2",
      "--health-timeout",
      "5s",
      IMG,
      "sleep",
      "100000",
    ]);
    await must(["run", "-d", "--name", "plain", "--network", "none", IMG, "sleep", "100000"]);
    const first = await healthOf("hc1");
    expect(first?.Status).toBe("starting");
    expect(await must(["ps", "--filter", "health=starting", "--format", "{{.Names}}"])).toBe("hc1");
    expect(await must(["ps", "--filter", "name=hc1", "--format", "{{.Status}}"])).toMatch(/^Up .* \(health: starting\)$/);

    await waitStatus("hc1", "unhealthy");
    const bad = (await healthOf("hc1"))!;
    expect(bad.FailingStreak).toBeGreaterThanOrEqual(2);
    expect(bad.Log.at(-1)!.ExitCode).toBe(1);
    expect(bad.Log.at(-1)!.Output).toContain("can't open '/tmp/ok'");
    expect(await must(["ps", "--filter", "name=hc1", "--format", "{{.Status}}"])).toMatch(/^Up .* \(unhealthy\)$/);
    expect(await must(["ps", "--filter", "health=unhealthy", "--format", "{{.Names}}"])).toBe("hc1");

    await must(["exec", "hc1", "sh", "-c", "echo fine > /tmp/ok"]);
    await waitStatus("hc1", "healthy");
    const good = (await healthOf("hc1"))!;
    expect(good.FailingStreak).toBe(0);
    expect(good.Log.at(-1)).toMatchObject({ ExitCode: 0, Output: "fine\n" });
    expect(Date.parse(good.Log.at(-1)!.End)).toBeGreaterThanOrEqual(Date.parse(good.Log.at(-1)!.Start));
    await waitFor("five log entries", async () => ((await healthOf("hc1"))!.Log.length === 5 ? true : undefined));
    await Bun.sleep(2200);
    expect((await healthOf("hc1"))!.Log.length).toBe(5); // only the last five are kept
    expect(await must(["ps", "--filter", "name=hc1", "--format", "{{.Status}}"])).toMatch(/^Up .* \(healthy\)$/);
    expect(await must(["ps", "--filter", "health=healthy", "--format", "{{.Names}}"])).toBe("hc1");
    expect(await must(["ps", "--filter", "health=none", "--format", "{{.Names}}"])).toBe("plain");
    expect(await healthOf("plain")).toBeUndefined();

    const actions = await eventsSince(since, "hc1");
    expect(actions.filter((a) => a.startsWith("health_status"))).toEqual(["health_status: unhealthy", "health_status: healthy"]);
    expect(actions).toContain("exec_start: /bin/sh -c cat /tmp/ok"); // the probe runs as an exec, as in Docker
  });

  test("pause and stop end the checks; start runs them again from starting", async () => {
    await must(["run", "-d", "--name", "hc2", "--network", "none", "--health-cmd", "true", "--health-interval", "200ms", IMG, "sleep", "100000"]);
    await waitStatus("hc2", "healthy");
    await must(["pause", "hc2"]);
    const paused = (await healthOf("hc2"))!.Log.at(-1)!.End;
    await Bun.sleep(1000);
    expect((await healthOf("hc2"))!.Log.at(-1)!.End).toBe(paused);
    await must(["unpause", "hc2"]);
    await waitFor("a check after unpause", async () => ((await healthOf("hc2"))!.Log.at(-1)!.End !== paused ? true : undefined));

    await must(["stop", "-t", "0", "hc2"]);
    const stopped = (await healthOf("hc2"))!.Log.at(-1)!.End;
    await Bun.sleep(1000);
    expect((await healthOf("hc2"))!.Log.at(-1)!.End).toBe(stopped);
    expect(await must(["ps", "-a", "--filter", "name=hc2", "--format", "{{.Status}}"])).toMatch(/^Exited/);

    await must(["start", "hc2"]);
    expect((await healthOf("hc2"))!.Status).toBe("starting");
    await waitStatus("hc2", "healthy");
  });

  test("after a daemon restart, running containers' checks run again (from starting)", async () => {
    await must(["run", "-d", "--name", "hc7", "--network", "none", "--health-cmd", "true", "--health-interval", "300ms", IMG, "sleep", "100000"]);
    await waitStatus("hc7", "healthy");
    const restartedAt = Date.now();
    await d.stop();
    await d.start();
    // Health lives in apid's memory: only checks run since the restart can report healthy.
    await waitStatus("hc7", "healthy");
    const log = (await healthOf("hc7"))!.Log;
    expect(Date.parse(log[0]!.Start)).toBeGreaterThan(restartedAt);
  });

  test("a check that outlives its timeout fails with dockerd's message", async () => {
    await must([
      "run",
      "-d",
      "--name",
      "hc3",
      "--network",
      "none",
      "--health-cmd",
      "sleep 10",
      "--health-interval",
      "200ms",
      "--health-timeout",
      "300ms",
      "--health-retries",
      "1",
      IMG,
      "sleep",
      "100000",
    ]);
    await waitStatus("hc3", "unhealthy");
    expect((await healthOf("hc3"))!.Log[0]).toMatchObject({ ExitCode: -1, Output: "Health check exceeded timeout (300ms)" });
  });

  test("the image's HEALTHCHECK is inherited, overridden field by field, and --no-healthcheck disables it", async () => {
    const img = (await pushBusybox(fx.reg, "hcimage", "latest", { config: { Cmd: ["sleep", "100000"], Healthcheck: { Test: ["CMD", "false"], Interval: 200_000_000, Retries: 1 } } })).reference;
    await must(["pull", "-q", img]);
    await must(["run", "-d", "--name", "hc4", "--network", "none", img]);
    await waitStatus("hc4", "unhealthy");
    const cfg = JSON.parse(await must(["inspect", "--format", "{{json .Config.Healthcheck}}", "hc4"]));
    expect(cfg).toMatchObject({ Test: ["CMD", "false"], Interval: 200_000_000, Retries: 1 });

    await must(["run", "-d", "--name", "hc5", "--network", "none", "--health-cmd", "true", img]);
    await waitStatus("hc5", "healthy");
    expect(JSON.parse(await must(["inspect", "--format", "{{json .Config.Healthcheck}}", "hc5"]))).toMatchObject({ Test: ["CMD-SHELL", "true"], Interval: 200_000_000 });

    await must(["run", "-d", "--name", "hc6", "--network", "none", "--no-healthcheck", img]);
    await Bun.sleep(600);
    expect(await healthOf("hc6")).toBeUndefined();
    expect(await must(["ps", "--filter", "name=hc6", "--format", "{{.Status}}"])).toMatch(/^Up [^(]*$/);
  });

  test("invalid durations and retries are a 400 with dockerd's wording", async () => {
    for (const [hc, message] of [
      [{ Test: ["CMD", "true"], Interval: 1000 }, "Interval in Healthcheck cannot be less than 1ms"],
      [{ Test: ["CMD", "true"], Timeout: 5 }, "Timeout in Healthcheck cannot be less than 1ms"],
      [{ Test: ["CMD", "true"], StartPeriod: 5 }, "StartPeriod in Healthcheck cannot be less than 1ms"],
      [{ Test: ["CMD", "true"], Retries: -1 }, "Retries in Healthcheck cannot be negative"],
    ] as const) {
      const res = await d.api("/containers/create", { method: "POST", headers: json, body: JSON.stringify({ Image: IMG, Cmd: ["true"], Healthcheck: hc, HostConfig: { NetworkMode: "none" } }) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { message: string }).message).toBe(message);
    }
  });

  test("python3-docker: healthcheck= on run, State.Health through attrs", async () => {
    const py = `
import docker, time
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
ct = c.containers.run(${JSON.stringify(IMG)}, ["sleep", "100000"], detach=True, name="hcpy", network_mode="none",
    healthcheck={"test": ["CMD-SHELL", "echo py-ok"], "interval": 200_000_000, "retries": 2})
for _ in range(100):
    ct.reload()
    h = ct.attrs["State"].get("Health")
    if h and h["Status"] == "healthy":
        break
    time.sleep(0.1)
print(h["Status"], h["FailingStreak"], h["Log"][-1]["Output"].strip())
print(len(c.containers.list(filters={"health": "healthy", "name": "hcpy"})))
`;
    const r = await run(["/usr/bin/python3", "-c", py]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("healthy 0 py-ok\n1\n");
  });
});
