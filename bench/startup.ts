/**
 * Cold start and idle cost, ArcBox against Docker Engine in the same run:
 *   - cold start: from `arcbox start` (resp. spawning dockerd) to the first successful
 *     `docker version` against it, alternating the two engines round by round;
 *   - idle CPU of all their processes over a quiet window after settling, with 0 and
 *     with 10 running containers (`sleep` in busybox, --network none): ArcBox's supervisor,
 *     services, guest agent and shims; dockerd, containerd and its shims. The container
 *     workloads themselves are not counted on either side;
 *   - idle PSS of the same processes (shared pages split among their users);
 *   - VM mode (skip with --no-vm): `arcbox start --vm` on a fresh home to the first
 *     successful `docker run --rm busybox true`, against a bare qemu boot of the same
 *     kernel, and the idle CPU of the engine machine (its qemu) and of the rest of
 *     ArcBox, against a bare qemu idling (TCG here: the emulator's numbers).
 * Both engines run at the same time during the idle phase and are measured over the
 * same windows. CPU comes from per-thread schedstat (ns), not 10 ms clock ticks.
 * Usage: bun bench/startup.ts [--runs N] [--idle-seconds S] [--settle-seconds S] [--containers N] [--no-vm]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon } from "../tests/helpers/daemon.ts";
import { buildBusyboxRootfs, tarDirectory } from "../tests/helpers/test-images.ts";
import { bareBoot, bareBootMs, bareInitramfs } from "./lib/bare-boot.ts";
import { createPeerNetns, startDockerd } from "./lib/dockerd.ts";
import { aloneBytes, cpuNanosBetween, engineProcesses, memoryBreakdown, pssBytes, rssBytes, threadCpuNanos } from "./lib/proc-stats.ts";
import { median, printReport, type Row } from "./lib/report.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("--runs", 5);
const IDLE_SECONDS = arg("--idle-seconds", 60);
// Bun's GC controller ticks every second for its first ~30 s: idle means after settling,
// for both engines alike.
const SETTLE_SECONDS = arg("--settle-seconds", 30);
const CONTAINERS = arg("--containers", 10);
const VM = !process.argv.includes("--no-vm");
const ARCBOX = join(import.meta.dir, "..", "bin", "arcbox");
const IMAGE = "bench/busybox:latest";

function dockerOk(host: string, args: string[], stdin?: Uint8Array): boolean {
  return Bun.spawnSync(["docker", "-H", host, ...args], { stdin, stdout: "pipe", stderr: "pipe" }).exitCode === 0;
}
function dockerMust(host: string, args: string[], stdin?: Uint8Array): void {
  const r = Bun.spawnSync(["docker", "-H", host, ...args], { stdin, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`docker ${args.join(" ")}: ${r.stderr}`);
}
const dockerVersion = (host: string) => dockerOk(host, ["version", "--format", "{{.Server.APIVersion}}"]);

/** CPU time (ms, all threads) the engine's processes alive at that moment have used. */
const cpuMs = (pids: number[]) => cpuNanosBetween(new Map(), threadCpuNanos(pids)) / 1e6;

interface ColdStart {
  ms: number;
  /**
   * CPU its processes used until `docker version` answered: far less sensitive to the
   * machine's load than the wall time. Short-lived helpers that already exited (ArcBox's
   * start script, its `find`) are not in it.
   */
  cpuMs: number;
}

async function arcboxColdStart(): Promise<ColdStart> {
  const home = mkdtempSync(join(tmpdir(), "bench-arcbox-"));
  try {
    const t0 = performance.now();
    const start = Bun.spawnSync([ARCBOX, "--home", home, "start"], { stdout: "pipe", stderr: "pipe" });
    if (start.exitCode !== 0) throw new Error(`arcbox start failed: ${start.stderr}`);
    const host = `unix://${join(home, "run", "docker.sock")}`;
    while (!dockerVersion(host)) await Bun.sleep(5);
    const ms = performance.now() - t0;
    const supervisorPid = Number(readFileSync(join(home, "run", "arcboxd.lock"), "utf8"));
    return { ms, cpuMs: cpuMs(engineProcesses(supervisorPid, home)) };
  } finally {
    Bun.spawnSync([ARCBOX, "--home", home, "stop"]);
    rmSync(home, { recursive: true, force: true });
  }
}

async function dockerColdStart(): Promise<ColdStart> {
  // The peer's own network namespace is made before the clock starts: it is the bench's
  // isolation, not part of Docker's start.
  const netns = createPeerNetns();
  try {
    const t0 = performance.now();
    const engine = await startDockerd({ netns });
    while (!dockerVersion(engine.host)) await Bun.sleep(5);
    const ms = performance.now() - t0;
    const cpu = cpuMs(engineProcesses(engine.pid, engine.root));
    await engine.stop();
    return { ms, cpuMs: cpu };
  } finally {
    netns.remove();
  }
}

interface Engine {
  host: string;
  pids: () => number[];
}

interface Idle {
  cpuMsPerMin: number;
  pssMB: number;
  rssMB: number;
  aloneMB: number;
  procs: number;
  /** Per process (grouped by name): which ones are up, and what their PSS is made of. */
  breakdown: string;
}

/** Settles, then measures every engine over the same window. */
async function idleAll(engines: Engine[]): Promise<Idle[]> {
  await Bun.sleep(SETTLE_SECONDS * 1000);
  const pids = engines.map((e) => e.pids());
  const before = pids.map((p) => threadCpuNanos(p));
  const t0 = performance.now();
  await Bun.sleep(IDLE_SECONDS * 1000);
  const minutes = (performance.now() - t0) / 60_000;
  return engines.map((e, i) => {
    const after = threadCpuNanos(pids[i]!);
    const now = e.pids();
    const breakdown = memoryBreakdown(now)
      .map((g) => `${g.count > 1 ? `${g.count}x ` : ""}${g.name} ${g.pssMB.toFixed(1)} (anon ${g.anonMB.toFixed(1)})`)
      .join(", ");
    return {
      cpuMsPerMin: cpuNanosBetween(before[i]!, after) / 1e6 / minutes,
      pssMB: pssBytes(now) / 1e6,
      rssMB: rssBytes(now) / 1e6,
      aloneMB: aloneBytes(now) / 1e6,
      procs: pids[i]!.length,
      breakdown,
    };
  });
}

function busyboxTar(): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "bench-busybox-"));
  try {
    buildBusyboxRootfs(dir);
    return tarDirectory(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// 1. Cold start, alternating the order so neither side always runs on a warmer cache.
const arcboxStarts: ColdStart[] = [];
const dockerStarts: ColdStart[] = [];
for (let i = 0; i < RUNS; i++) {
  if (i % 2 === 0) arcboxStarts.push(await arcboxColdStart()), dockerStarts.push(await dockerColdStart());
  else dockerStarts.push(await dockerColdStart()), arcboxStarts.push(await arcboxColdStart());
  const [a, d] = [arcboxStarts.at(-1)!, dockerStarts.at(-1)!];
  console.log(`run ${i + 1}/${RUNS}: arcbox ${a.ms.toFixed(0)} ms (${a.cpuMs.toFixed(0)} ms CPU), docker ${d.ms.toFixed(0)} ms (${d.cpuMs.toFixed(0)} ms CPU)`);
}
const startLoad = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

// 2. Idle, both engines up at once: 0 containers, then CONTAINERS running.
const home = mkdtempSync(join(tmpdir(), "bench-arcbox-"));
const netns = createPeerNetns();
let engine: Awaited<ReturnType<typeof startDockerd>> | undefined;
let idle0: Idle[], idleN: Idle[];
try {
  if (Bun.spawnSync([ARCBOX, "--home", home, "start"]).exitCode !== 0) throw new Error("arcbox start failed");
  engine = await startDockerd({ netns });
  const supervisorPid = Number(readFileSync(join(home, "run", "arcboxd.lock"), "utf8"));
  const engines: Engine[] = [
    { host: `unix://${join(home, "run", "docker.sock")}`, pids: () => engineProcesses(supervisorPid, home, ["sleep"]) },
    { host: engine.host, pids: () => engineProcesses(engine!.pid, engine!.root, ["sleep"]) },
  ];
  for (const e of engines) if (!dockerVersion(e.host)) throw new Error(`${e.host} does not answer`);
  idle0 = await idleAll(engines);
  console.log(`idle, 0 containers: arcbox ${idle0[0]!.cpuMsPerMin.toFixed(1)} ms/min (${idle0[0]!.procs} procs), docker ${idle0[1]!.cpuMsPerMin.toFixed(1)} ms/min (${idle0[1]!.procs} procs)`);
  console.log(`  PSS MB: arcbox ${idle0[0]!.breakdown}\n          docker ${idle0[1]!.breakdown}`);
  const tar = busyboxTar();
  for (const e of engines) {
    dockerMust(e.host, ["import", "-", IMAGE], tar);
    for (let i = 0; i < CONTAINERS; i++) dockerMust(e.host, ["run", "-d", "--network", "none", IMAGE, "sleep", "1000000"]);
  }
  idleN = await idleAll(engines);
  console.log(
    `idle, ${CONTAINERS} containers: arcbox ${idleN[0]!.cpuMsPerMin.toFixed(1)} ms/min (${idleN[0]!.procs} procs), docker ${idleN[1]!.cpuMsPerMin.toFixed(1)} ms/min (${idleN[1]!.procs} procs)`,
  );
  console.log(`  PSS MB: arcbox ${idleN[0]!.breakdown}\n          docker ${idleN[1]!.breakdown}`);
  for (const e of engines) {
    const ids = Bun.spawnSync(["docker", "-H", e.host, "ps", "-aq"]).stdout.toString().trim().split("\n").filter(Boolean);
    if (ids.length) Bun.spawnSync(["docker", "-H", e.host, "rm", "-f", ...ids], { stdout: "ignore", stderr: "ignore" });
  }
} finally {
  Bun.spawnSync([ARCBOX, "--home", home, "stop"]);
  rmSync(home, { recursive: true, force: true });
  await engine?.stop();
  netns.remove();
}

// 3. VM mode: start to the first container, then the engine machine at rest.
interface VmMode {
  firstRunMs: number;
  bareBootMs: number;
  qemuCpuMsPerMin: number;
  restCpuMsPerMin: number;
  bareQemuCpuMsPerMin: number;
}
async function vmMode(): Promise<VmMode> {
  const work = mkdtempSync(join(tmpdir(), "bench-startup-vm-"));
  // TestDaemon: `arcbox start` with "vm": true in daemon.json, and a dispose that also
  // ends the engine machine and its network objects (they outlive `arcbox stop`).
  const d = new TestDaemon("bench-startup-vm-", {}, undefined, { engine: "vm" });
  try {
    const initrd = bareInitramfs(work);
    const bare = await bareBootMs(initrd, { accel: "tcg", cpus: 2, memoryMib: 2048 });
    const t0 = performance.now();
    await d.start();
    await d.importBusybox(IMAGE);
    const run = await d.docker(["run", "--rm", IMAGE, "true"], { timeoutMs: 600_000 });
    if (run.code !== 0) throw new Error(`docker run in VM mode: ${run.stderr}`);
    const firstRunMs = performance.now() - t0;
    const supervisorPid = Number(readFileSync(join(d.home, "run", "arcboxd.lock"), "utf8"));
    const qemuPid = Number(readFileSync(join(d.home, "data", "vmm", "machines", "arcbox-engine", "qemu.pid"), "utf8"));
    const bareIdle = await bareBoot(initrd, { accel: "tcg", cpus: 2, memoryMib: 2048, idle: true });
    try {
      const [qemu, rest, bareQemu] = await idleAll([
        { host: d.dockerHost, pids: () => [qemuPid] },
        { host: d.dockerHost, pids: () => engineProcesses(supervisorPid, d.home).filter((p) => p !== qemuPid) },
        { host: "", pids: () => [bareIdle.proc.pid] },
      ]);
      return { firstRunMs, bareBootMs: bare, qemuCpuMsPerMin: qemu!.cpuMsPerMin, restCpuMsPerMin: rest!.cpuMsPerMin, bareQemuCpuMsPerMin: bareQemu!.cpuMsPerMin };
    } finally {
      bareIdle.proc.kill("SIGKILL");
    }
  } finally {
    await d.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}
const vm = VM ? await vmMode() : undefined;
if (vm)
  console.log(
    `VM mode (TCG): start --vm to the first docker run ${vm.firstRunMs.toFixed(0)} ms (bare boot ${vm.bareBootMs.toFixed(0)} ms, ${(vm.firstRunMs / vm.bareBootMs).toFixed(2)}x); idle engine machine qemu ${vm.qemuCpuMsPerMin.toFixed(1)} ms/min (bare qemu ${vm.bareQemuCpuMsPerMin.toFixed(1)}), the rest of ArcBox ${vm.restCpuMsPerMin.toFixed(1)} ms/min`,
  );

const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const rows: Row[] = [
  { metric: "cold start to docker version", unit: "ms", arcbox: median(arcboxStarts.map((s) => s.ms)), docker: median(dockerStarts.map((s) => s.ms)), lowerIsBetter: true },
  { metric: "CPU until docker version", unit: "ms", arcbox: median(arcboxStarts.map((s) => s.cpuMs)), docker: median(dockerStarts.map((s) => s.cpuMs)), lowerIsBetter: true },
  { metric: "idle CPU, 0 containers", unit: "ms/min", arcbox: idle0[0]!.cpuMsPerMin, docker: idle0[1]!.cpuMsPerMin, lowerIsBetter: true },
  { metric: `idle CPU, ${CONTAINERS} containers`, unit: "ms/min", arcbox: idleN[0]!.cpuMsPerMin, docker: idleN[1]!.cpuMsPerMin, lowerIsBetter: true },
  { metric: "idle PSS, 0 containers", unit: "MB", arcbox: idle0[0]!.pssMB, docker: idle0[1]!.pssMB, lowerIsBetter: true },
  { metric: `idle PSS, ${CONTAINERS} containers`, unit: "MB", arcbox: idleN[0]!.pssMB, docker: idleN[1]!.pssMB, lowerIsBetter: true },
  // PSS splits shared pages (the bun or dockerd binary) among all their users on the
  // machine, other engines included: RSS is the upper bound.
  // Shared files counted once, as if nothing else ran (proc-stats.ts, aloneBytes): what
  // PSS would be on a quiet machine, independent of the other Bun processes around.
  { metric: "idle memory alone, 0 containers", unit: "MB", arcbox: idle0[0]!.aloneMB, docker: idle0[1]!.aloneMB, lowerIsBetter: true },
  { metric: `idle memory alone, ${CONTAINERS} ctrs`, unit: "MB", arcbox: idleN[0]!.aloneMB, docker: idleN[1]!.aloneMB, lowerIsBetter: true },
  { metric: "idle RSS, 0 containers", unit: "MB", arcbox: idle0[0]!.rssMB, docker: idle0[1]!.rssMB, lowerIsBetter: true },
  { metric: `idle RSS, ${CONTAINERS} containers`, unit: "MB", arcbox: idleN[0]!.rssMB, docker: idleN[1]!.rssMB, lowerIsBetter: true },
];
printReport(
  `ArcBox vs Docker Engine (dockerd ${Bun.spawnSync(["dockerd", "--version"]).stdout.toString().trim()}), cold start: ${RUNS} runs, medians, load average ${startLoad} after them; idle: ${IDLE_SECONDS} s window after ${SETTLE_SECONDS} s; load average ${load}`,
  rows,
);
