/**
 * Containers across restarts: apid killed with SIGKILL (the supervisor restarts it) and a
 * full daemon stop/start, with containers running; exits while apid is down; restart
 * policies applied when the daemon starts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import { waitFor } from "../helpers/wait.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-cr-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

const docker = (args: string[], opts?: Parameters<TestDaemon["docker"]>[1]) => d.docker(args, opts);
const inspect = async (ref: string) => JSON.parse((await docker(["inspect", ref])).stdout)[0];

async function apidPid(): Promise<{ state: string; pid: number }> {
  const r = await d.arcbox(["status"]);
  const m = /^apid\s+(\w+)\s+(\S+)/m.exec(r.stdout);
  return { state: m?.[1] ?? "", pid: Number(m?.[2]) };
}

test("a running container survives apid being killed; exits while apid is down are recorded", async () => {
  const first = await docker(["run", "-d", "--name", "survivor", "--network", "none", IMG, "sh", "-c", "echo before; exec sleep 1000"]);
  expect(first.stderr).toBe("");
  const marker = String(100000 + Math.floor(Math.random() * 800000));
  expect((await docker(["run", "-d", "--name", "dies-meanwhile", "--network", "none", IMG, "sleep", marker])).stderr).toBe("");
  const pidBefore = (await inspect("survivor")).State.Pid;
  const old = await apidPid();
  const victim = (await inspect("dies-meanwhile")).State.Pid;
  // Never signal pid 0 (our own process group) by accident.
  expect(old.pid).toBeGreaterThan(1);
  expect(victim).toBeGreaterThan(1);
  process.kill(old.pid, "SIGKILL");
  // The second container dies while apid is down.
  process.kill(victim, "SIGKILL");
  await waitFor("apid restarted", async () => {
    const s = await apidPid();
    return s.state === "ready" && s.pid !== old.pid ? s : undefined;
  });
  const survivor = await waitFor("survivor listed", async () => {
    const i = await inspect("survivor").catch(() => undefined);
    return i?.State ? i : undefined;
  });
  expect(survivor.State.Status).toBe("running");
  expect(survivor.State.Pid).toBe(pidBefore);
  const dead = await waitFor("exit recorded", async () => {
    const i = await inspect("dies-meanwhile");
    return i.State.Status === "exited" ? i : undefined;
  });
  expect(dead.State.ExitCode).toBe(137);
  // The new apid follows the runtime again: exec, logs, stop and its exit code.
  expect((await docker(["exec", "survivor", "echo", "still here"])).stdout).toBe("still here\n");
  expect((await docker(["logs", "survivor"])).stdout).toBe("before\n");
  expect((await docker(["stop", "-t", "1", "survivor"])).code).toBe(0);
  expect((await inspect("survivor")).State.ExitCode).toBe(137);
  await docker(["rm", "survivor", "dies-meanwhile"]);
}, 60_000);

test("a full daemon restart keeps running containers and applies restart policies", async () => {
  await docker(["run", "-d", "--name", "keeps", "--network", "none", IMG, "sleep", "1000"]);
  await docker(["run", "-d", "--name", "always", "--restart", "always", "--network", "none", IMG, "sleep", "1000"]);
  await docker(["run", "-d", "--name", "unless", "--restart", "unless-stopped", "--network", "none", IMG, "sleep", "1000"]);
  await docker(["stop", "-t", "0", "always", "unless"]);
  const keepsPid = (await inspect("keeps")).State.Pid;
  expect((await d.stop(), (await d.arcbox(["status"])).code)).not.toBe(0);
  await d.start();
  const keeps = await waitFor("keeps listed", async () => (await inspect("keeps").catch(() => undefined)) ?? undefined);
  expect(keeps.State.Status).toBe("running");
  expect(keeps.State.Pid).toBe(keepsPid);
  // "always" comes back at daemon start even after a manual stop; "unless-stopped" does not.
  await waitFor("always restarted", async () => ((await inspect("always")).State.Status === "running" ? true : undefined));
  expect((await inspect("unless")).State.Status).toBe("exited");
  const ex = await docker(["exec", "keeps", "sh", "-c", "exit 9"]);
  expect(ex.code).toBe(9);
  expect((await docker(["rm", "-f", "keeps", "always", "unless"])).code).toBe(0);
}, 90_000);
