/**
 * Containers outlive vmm and the supervisor: the guest agent runs detached, a new vmm
 * reconnects to it, and runtime events of a container started before the restart
 * still arrive afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import type { RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon } from "../helpers/daemon.ts";
import { buildBusyboxRootfs } from "../helpers/test-images.ts";

const daemon = new TestDaemon("arcbox-runtime-restart-");
const base = mkdtempSync("/tmp/arcbox-runtime-restart-fs-");
let clients: ServiceClients;
const ids: string[] = [];
// cgroup paths are /arcbox/<id> host-wide: ids unique to this run keep parallel homes apart.
const run = Date.now().toString(36);
const survivor = (n: number) => `survivor${n}-${run}`;

/** Pids of guest agents serving this test's home. */
function agentPids(): number[] {
  const out = Bun.spawnSync(["pgrep", "-f", "--", `--home ${daemon.home}$`]).stdout.toString();
  return out
    .split("\n")
    .filter(Boolean)
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("guest");
      } catch {
        return false;
      }
    });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

/**
 * Opens an Events stream and resolves the first event matching `pred`; `live` resolves
 * when vmm confirms the subscription (its first message carries no event).
 */
function nextEvent(pred: (e: RuntimeEvent) => boolean) {
  const ac = new AbortController();
  let markLive!: () => void;
  const live = new Promise<void>((r) => (markLive = r));
  const event = (async () => {
    for await (const r of clients.machines.events({ machine: "host" }, { signal: ac.signal })) {
      if (!r.event) markLive();
      else if (pred(r.event)) return r.event;
    }
    throw new Error("event stream ended");
  })();
  return { event, live: Promise.race([live, event.then(() => {})]), cancel: () => ac.abort() };
}

async function startSleeper(id: string, args = ["sleep", "1000"]) {
  const dir = join(base, id);
  for (const d of ["upper", "work"]) mkdirSync(join(dir, d), { recursive: true });
  ids.push(id);
  await clients.machines.createContainer({
    machine: "host",
    id,
    init: true,
    rootfs: { lowerDirs: [join(base, "lower")], upperDir: join(dir, "upper"), workDir: join(dir, "work") },
    process: { args, openStdin: true, stdinOnce: true },
    logPath: join(dir, "log.json"),
  });
  return clients.machines.startContainer({ machine: "host", id });
}

beforeAll(async () => {
  buildBusyboxRootfs(join(base, "lower"));
  await daemon.start();
  clients = new ServiceClients(arcboxHome(daemon.home));
}, 60_000);

afterAll(async () => {
  for (const id of ids) await clients.machines.deleteContainer({ machine: "host", id, force: true }).catch(() => {});
  await daemon.dispose();
  rmSync(base, { recursive: true, force: true });
}, 60_000);

test("a container keeps running when vmm is killed with SIGKILL; its stdio and events still work", async () => {
  const started = await startSleeper(survivor(1), ["sh", "-c", "read line; echo got $line; exit 4"]);
  const vmmPid = (await clients.health("vmm").check({})).pid;
  const agents = agentPids();
  expect(agents).toHaveLength(1);

  process.kill(vmmPid, "SIGKILL");
  // The supervisor restarts vmm, which reconnects to the running agent.
  const newPid = await until("vmm restart", async () => {
    const pid = (await clients.health("vmm").check({})).pid;
    return pid !== vmmPid ? pid : undefined;
  });
  expect(newPid).not.toBe(vmmPid);
  expect(agentPids()).toEqual(agents);
  const s = (await clients.machines.containerStates({ machine: "host", ids: [survivor(1)] })).containers[0]!;
  expect(s).toMatchObject({ status: "running", pid: started.pid });
  expect(() => process.kill(started.pid, 0)).not.toThrow();

  // The shim still holds the container's stdio: attach, send a line, and it exits by itself.
  const exit = nextEvent((e) => e.type === "exit" && e.containerId === survivor(1));
  await exit.live;
  const sock = connect(s.stdioSocket);
  const chunks: Buffer[] = [];
  sock.on("data", (c: Buffer) => chunks.push(c));
  const closed = new Promise((r) => sock.on("close", r));
  await new Promise((r) => sock.once("connect", r));
  sock.end("hello\n");
  expect((await exit.event).exitCode).toBe(4);
  await closed;
  const out = Buffer.concat(chunks);
  expect(out[0]).toBe(1); // a stdout frame
  expect(out.subarray(8).toString()).toBe("got hello\n");
  expect(readFileSync(join(base, survivor(1), "log.json"), "utf8")).toContain('"log":"got hello\\n","stream":"stdout"');
  exit.cancel();
}, 90_000);

test("a container keeps running across a full daemon restart", async () => {
  const started = await startSleeper(survivor(2));
  const agents = agentPids();
  await daemon.stop();
  expect(() => process.kill(started.pid, 0)).not.toThrow();
  await daemon.start();
  const s = (await clients.machines.containerStates({ machine: "host", ids: [survivor(2)] })).containers[0]!;
  expect(s).toMatchObject({ status: "running", pid: started.pid });
  expect(agentPids()).toEqual(agents);
  const exit = nextEvent((e) => e.type === "exit" && e.containerId === survivor(2));
  await exit.live;
  await clients.machines.killContainer({ machine: "host", id: survivor(2), signal: "SIGKILL" });
  expect((await exit.event).exitCode).toBe(137);
  exit.cancel();
}, 90_000);

test("a container keeps running when the agent itself is killed; a new agent takes over", async () => {
  const started = await startSleeper(survivor(3));
  const [agent] = agentPids();
  process.kill(agent!, "SIGKILL");
  // vmm sees the connection drop and starts a new agent, which reloads its state from disk.
  const next = await until("a new agent", async () => {
    const pids = agentPids().filter((p) => p !== agent);
    return pids.length === 1 ? pids[0] : undefined;
  });
  expect(next).not.toBe(agent);
  const s = (await clients.machines.containerStates({ machine: "host", ids: [survivor(3)] })).containers[0]!;
  expect(s).toMatchObject({ status: "running", pid: started.pid });
  const exit = nextEvent((e) => e.type === "exit" && e.containerId === survivor(3));
  await exit.live;
  await clients.machines.killContainer({ machine: "host", id: survivor(3), signal: "SIGTERM" });
  expect((await exit.event).exitCode).toBe(143);
  exit.cancel();
}, 90_000);
