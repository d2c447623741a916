/**
 * Lazy services go away when nothing needs them and come back on the next call, so
 * a daemon with no containers returns to its small idle footprint after use.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";
import { processTree, rssBytes } from "../../bench/lib/proc-stats.ts";

let d: TestDaemon;
let reg: TestRegistry;
let image: string;

beforeAll(async () => {
  reg = await startRegistry();
  image = (await pushBusybox(reg)).reference;
  d = new TestDaemon("arcbox-idle-", { ARCBOX_IDLE_EXIT_SECONDS: "1" });
  await d.start();
}, 90_000);
afterAll(async () => {
  await d?.dispose();
  await reg?.stop();
}, 90_000);

const states = () => d.serviceStates();

const ok = async (args: string[]) => {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

test("imaged, netd and fsd exit when idle, keep their state, and start again on the next call", async () => {
  await ok(["pull", "-q", image]);
  await ok(["network", "create", "idlenet"]);
  await ok(["volume", "create", "idlevol"]);
  await ok(["run", "--rm", "--network", "idlenet", "-v", "idlevol:/v", image, "sh", "-c", "echo kept > /v/f"]);
  // They served this run (with a 1 s idle period they may already be gone again).
  const started = readFileSync(join(d.home, "log", "supervisor.log"), "utf8");
  for (const svc of ["imaged", "netd", "fsd"]) expect(started).toContain(`service=${svc} `);

  await waitFor(
    "lazy services to exit",
    async () => {
      const s = await states();
      return s.imaged === "idle" && s.netd === "idle" && s.fsd === "idle";
    },
    30_000,
  );
  const log = readFileSync(join(d.home, "log", "supervisor.log"), "utf8");
  expect(log).toContain("service imaged exited while idle");
  expect(log).not.toContain("exited unexpectedly");

  // Everything is still there, served by fresh processes.
  expect(await ok(["images", "--format", "{{.Repository}}:{{.Tag}}"])).toContain(image);
  expect(await ok(["network", "ls", "--format", "{{.Name}}"])).toContain("idlenet");
  expect(await ok(["run", "--rm", "--network", "idlenet", "-v", "idlevol:/v", image, "cat", "/v/f"])).toBe("kept\n");
  await ok(["network", "rm", "idlenet"]);
  await ok(["volume", "rm", "idlevol"]);
}, 120_000);

test("a service with work in hand does not exit: netd stays while a container is attached", async () => {
  await ok(["run", "-d", "--name", "holder", image, "sleep", "600"]);
  await Bun.sleep(3000); // three idle periods
  expect((await states()).netd).toBe("ready");
  await ok(["rm", "-f", "holder"]);
  await waitFor("netd to exit once the container is gone", async () => (await states()).netd === "idle", 30_000);
}, 90_000);

test("with no containers, the daemon returns under 150 MB resident once the lazy services exit", async () => {
  // vmm goes last: apid follows its events for 10 s after the last container stops.
  await waitFor(
    "every lazy service to be idle",
    async () => {
      const s = await states();
      return s.imaged === "idle" && s.netd === "idle" && s.fsd === "idle" && s.vmm === "idle";
    },
    90_000,
  );
  const pid = Number(readFileSync(join(d.home, "run", "arcboxd.lock"), "utf8"));
  const procs = processTree(pid);
  expect(procs.length).toBe(2); // the supervisor and apid
  // The guest agent (detached from vmm, so not in that tree) went away with vmm too.
  await waitFor("the guest agent to exit", async () => !(await run(["pgrep", "-f", `guest.*--home ${d.home}`])).stdout.trim(), 15_000);
  const rss = rssBytes(procs);
  expect(rss).toBeGreaterThan(10e6);
  expect(rss).toBeLessThan(150e6);
}, 90_000);
