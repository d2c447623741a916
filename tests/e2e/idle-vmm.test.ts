/**
 * In host mode vmm goes when idle also while containers run (services/vmm/main.ts,
 * HOST_IDLE_EXIT_SECONDS): the host's guest agent outlives it and writes the runtime
 * events to apid's FIFO itself. Everything a running container needs must keep
 * working with vmm gone: its exit reaching apid (wait, restart policy, --rm), events,
 * logs, exec, stop, and the guest agent dying while vmm is away.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { writersOf } from "../helpers/procfs.ts";
import { waitFor } from "../helpers/wait.ts";

const IMAGE = "idle-vmm-busybox:1";
let d: TestDaemon;

beforeAll(async () => {
  // Every lazy service idles out after 2 s here: vmm goes between the steps below.
  d = new TestDaemon("arcbox-idle-vmm-", { ARCBOX_IDLE_EXIT_SECONDS: "2" });
  await d.start();
  await d.importBusybox(IMAGE);
}, 120_000);

afterAll(async () => {
  await d?.dispose();
}, 60_000);

const ok = async (args: string[]) => {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

async function vmmGone(): Promise<void> {
  await waitFor("vmm to exit while idle", async () => (await d.serviceStates()).vmm === "idle" || (await Bun.sleep(100), false), 60_000);
}

const pidOf = async (name: string) => Number((await ok(["inspect", "-f", "{{.State.Pid}}", name])).trim());

const agentPid = async () => Number((await run(["pgrep", "-f", "--", `guest.*--home ${d.home}$`])).stdout.trim().split("\n")[0]);

test("vmm exits while containers run; their exits, restarts, --rm, events, logs, exec and stop still work", async () => {
  const events = Bun.spawn(["docker", "-H", d.dockerHost, "events", "--format", "{{.Action}} {{.Actor.Attributes.name}}"], { stdout: "pipe" });
  try {
    await ok(["run", "-d", "--name", "keeper", "--network", "none", IMAGE, "sh", "-c", "echo hello; sleep 600"]);
    await ok(["run", "-d", "--name", "exiter", "--network", "none", IMAGE, "sleep", "600"]);
    await ok(["run", "-d", "--name", "policy", "--restart", "always", "--network", "none", IMAGE, "sleep", "600"]);
    await ok(["run", "-d", "--rm", "--name", "passing", "--network", "none", IMAGE, "sleep", "600"]);
    await vmmGone();

    // apid's events come from the agent itself, not from a vmm.
    const fifo = join(d.home, "data", "apid", "events.fifo");
    expect(writersOf(fifo)).toEqual([await agentPid()]);
    expect((await ok(["ps", "--format", "{{.Names}}"])).split("\n").filter(Boolean).sort()).toEqual(["exiter", "keeper", "passing", "policy"]);

    // A container exits while vmm is down (killed from outside: nothing asks vmm): apid hears it.
    await vmmGone();
    process.kill(await pidOf("exiter"), "SIGKILL");
    expect((await ok(["wait", "exiter"])).trim()).toBe("137");

    // Its restart policy applies, and a --rm container is removed.
    await vmmGone();
    const policyPid = await pidOf("policy");
    process.kill(policyPid, "SIGKILL");
    await waitFor("the policy container to be restarted", async () => {
      const [count, running, pid] = (await ok(["inspect", "-f", "{{.RestartCount}} {{.State.Running}} {{.State.Pid}}", "policy"])).trim().split(" ");
      return count === "1" && running === "true" && Number(pid) !== policyPid;
    });
    await vmmGone();
    process.kill(await pidOf("passing"), "SIGKILL");
    await waitFor("the --rm container to be removed", async () => !(await ok(["ps", "-a", "--format", "{{.Names}}"])).includes("passing"));

    // Logs, exec and stop of a container that outlived vmm.
    await vmmGone();
    expect(await ok(["logs", "keeper"])).toBe("hello\n");
    await vmmGone();
    expect(await ok(["exec", "keeper", "cat", "/proc/1/cmdline"])).toContain("sleep");
    await vmmGone();
    await ok(["stop", "-t", "1", "keeper"]);
    expect((await ok(["inspect", "-f", "{{.State.Status}}", "keeper"])).trim()).toBe("exited");
  } finally {
    events.kill();
  }
  const seen = await new Response(events.stdout).text();
  for (const line of ["die exiter", "die policy", "start policy", "destroy passing", "exec_die keeper", "die keeper"]) expect(seen).toContain(line);

  const sup = readFileSync(join(d.home, "log", "supervisor.log"), "utf8");
  expect(sup).toContain("service vmm exited while idle");
  expect(sup).not.toContain("exited unexpectedly");
}, 240_000);

test("the guest agent dying while vmm is gone: apid subscribes again and a new agent reports exits", async () => {
  await ok(["start", "keeper"]);
  await ok(["run", "-d", "--name", "late", "--network", "none", IMAGE, "sleep", "600"]);
  await vmmGone();
  const old = await agentPid();
  expect(old).toBeGreaterThan(0);
  process.kill(old, "SIGKILL");
  // apid reads the end of its FIFO, asks vmm (started for it) again; vmm starts an agent.
  const fifo = join(d.home, "data", "apid", "events.fifo");
  const fresh = await waitFor("a new agent writing apid's events", async () => {
    const w = writersOf(fifo);
    return w.length === 1 && w[0] !== old ? w[0] : undefined;
  });
  expect(fresh).toBe(await agentPid());
  await vmmGone();
  process.kill(await pidOf("late"), "SIGKILL");
  expect((await ok(["wait", "late"])).trim()).toBe("137");
  expect((await ok(["inspect", "-f", "{{.State.Running}}", "keeper"])).trim()).toBe("true");
  await ok(["rm", "-f", "keeper", "late", "exiter", "policy"]);
}, 120_000);

test("with its own default, vmm leaves a running container on its own", async () => {
  const own = new TestDaemon("arcbox-idle-vmm-default-");
  try {
    await own.start();
    await own.importBusybox(IMAGE);
    expect((await own.docker(["run", "-d", "--name", "stays", "--network", "none", IMAGE, "sleep", "600"])).code).toBe(0);
    await waitFor("vmm to exit on its default", async () => (await own.serviceStates()).vmm === "idle" || (await Bun.sleep(500), false), 150_000);
    expect((await own.docker(["inspect", "-f", "{{.State.Running}}", "stays"])).stdout.trim()).toBe("true");
    expect((await own.docker(["rm", "-f", "stays"])).code).toBe(0);
  } finally {
    await own.dispose();
  }
}, 240_000);
