/**
 * Measures the runtime's latency (CreateContainer + StartContainer until the first byte
 * of output reaches an attached client) and the memory of the agent and of one shim.
 * Prints the numbers; asserts only correctness and generous bounds.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { REPO } from "../helpers/daemon.ts";
import { buildBusyboxRootfs } from "../helpers/test-images.ts";

const home = mkdtempSync("/tmp/arcbox-runtime-latency-");
const base = mkdtempSync("/tmp/arcbox-runtime-latency-fs-");
let vmm: ReturnType<typeof Bun.spawn>;
let clients: ServiceClients;
// cgroup paths are /arcbox/<id> host-wide: ids unique to this run keep parallel homes apart.
const run = Date.now().toString(36);

beforeAll(async () => {
  buildBusyboxRootfs(join(base, "lower"));
  mkdirSync(join(home, "log"), { recursive: true });
  vmm = Bun.spawn([process.execPath, "--smol", join(REPO, "services", "vmm", "main.ts"), "--home", home], { stdio: ["ignore", "ignore", "ignore"] });
  const deadline = Date.now() + 30_000;
  while (
    !(await fetch("http://x/", { unix: join(home, "run", "vmm.sock") } as RequestInit).then(
      () => true,
      () => false,
    ))
  ) {
    if (Date.now() > deadline) throw new Error("vmm did not start");
    await Bun.sleep(25);
  }
  clients = new ServiceClients(arcboxHome(home));
}, 60_000);

afterAll(async () => {
  vmm.kill("SIGTERM");
  await vmm.exited;
  rmSync(home, { recursive: true, force: true });
  rmSync(base, { recursive: true, force: true });
}, 30_000);

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

test("create + start to first output", async () => {
  const m = clients.machines;
  const create: number[] = [],
    start: number[] = [],
    firstByte: number[] = [];
  for (let i = 0; i < 12; i++) {
    const id = `lat${i}-${run}`;
    for (const d of ["upper", "work"]) mkdirSync(join(base, id, d), { recursive: true });
    const t0 = performance.now();
    const c = await m.createContainer({ id, rootfs: { lowerDirs: [join(base, "lower")], upperDir: join(base, id, "upper"), workDir: join(base, id, "work") }, process: { args: ["echo", "hello"] } });
    const t1 = performance.now();
    const sock = connect(c.stdioSocket);
    const first = new Promise<number>((resolve) => sock.once("data", () => resolve(performance.now())));
    const closed = new Promise((r) => sock.on("close", r));
    await new Promise((r) => sock.once("connect", r));
    const t2 = performance.now();
    await m.startContainer({ id });
    const t3 = performance.now();
    const t4 = await first;
    await closed;
    await m.deleteContainer({ id });
    if (i >= 2) {
      // the first runs warm caches up
      create.push(t1 - t0);
      start.push(t3 - t2);
      firstByte.push(t4 - t0 - (t2 - t1));
    }
  }
  console.log(
    `runtime latency (median of ${create.length}): create ${median(create).toFixed(1)} ms, start ${median(start).toFixed(1)} ms, create+start to first output ${median(firstByte).toFixed(1)} ms`,
  );
  expect(median(firstByte)).toBeLessThan(2000);
}, 120_000);

test("memory: the agent and one shim", async () => {
  const m = clients.machines;
  const id = `mem-${run}`;
  for (const d of ["upper", "work"]) mkdirSync(join(base, "mem", d), { recursive: true });
  await m.createContainer({ id, rootfs: { lowerDirs: [join(base, "lower")], upperDir: join(base, "mem", "upper"), workDir: join(base, "mem", "work") }, process: { args: ["sleep", "1000"] } });
  const { pid } = await m.startContainer({ id });
  const shimPid = Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/PPid:\s+(\d+)/)![1]);
  expect(readFileSync(`/proc/${shimPid}/comm`, "utf8").trim()).toBe("arcbox-shim");
  const agentPid = Number(
    Bun.spawnSync(["pgrep", "-f", "--", `guest.*--home ${home}$`])
      .stdout.toString()
      .trim()
      .split("\n")[0],
  );
  console.log(`memory: shim RSS ${rssKb(shimPid)} kB, agent RSS ${(rssKb(agentPid) / 1024).toFixed(1)} MB`);
  expect(rssKb(shimPid)).toBeLessThan(4096);
  await m.deleteContainer({ id, force: true });
}, 60_000);
