/**
 * Cold start and idle cost, ArcBox against Docker Engine in the same run:
 *   - cold start: from `arcbox start` (resp. spawning dockerd) to the first successful
 *     `docker version` against it;
 *   - idle resident memory of all their processes, and idle CPU over a quiet window.
 * Usage: bun bench/startup.ts [--runs N] [--idle-seconds S] [--settle-seconds S]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPeerNetns, startDockerd } from "./lib/dockerd.ts";
import { cpuTicks, processTree, rssBytes } from "./lib/proc-stats.ts";
import { median, printReport } from "./lib/report.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("--runs", 5);
const IDLE_SECONDS = arg("--idle-seconds", 30);
// Bun's GC controller ticks every second for its first ~30 s, then every 30 s: idle
// means after that settling, for both engines alike.
const SETTLE_SECONDS = arg("--settle-seconds", 30);
const ARCBOX = join(import.meta.dir, "..", "bin", "arcbox");

function dockerVersion(host: string): boolean {
  return Bun.spawnSync(["docker", "-H", host, "version", "--format", "{{.Server.APIVersion}}"], { stdout: "pipe", stderr: "pipe" }).exitCode === 0;
}

async function idleCost(pids: () => number[]) {
  await Bun.sleep(SETTLE_SECONDS * 1000); // let start-up work settle
  const rss = rssBytes(pids());
  const t0 = cpuTicks(pids());
  await Bun.sleep(IDLE_SECONDS * 1000);
  const cpuMsPerMin = ((cpuTicks(pids()) - t0) * 10 * 60) / IDLE_SECONDS;
  return { rss, cpuMsPerMin };
}

async function arcboxRun(measureIdle: boolean) {
  const home = mkdtempSync(join(tmpdir(), "bench-arcbox-"));
  const t0 = performance.now();
  const start = Bun.spawnSync([ARCBOX, "--home", home, "start"], { stdout: "pipe", stderr: "pipe" });
  if (start.exitCode !== 0) throw new Error(`arcbox start failed: ${start.stderr}`);
  const host = `unix://${join(home, "run", "docker.sock")}`;
  while (!dockerVersion(host)) await Bun.sleep(5);
  const ms = performance.now() - t0;
  const idle = measureIdle ? await idleCost(() => processTree(Number(readFileSync(join(home, "run", "arcboxd.lock"), "utf8")))) : undefined;
  Bun.spawnSync([ARCBOX, "--home", home, "stop"]);
  rmSync(home, { recursive: true, force: true });
  return { ms, idle };
}

async function dockerRun(measureIdle: boolean) {
  // The peer's own network namespace is made before the clock starts: it is the bench's
  // isolation, not part of Docker's start.
  const netns = createPeerNetns();
  const t0 = performance.now();
  const engine = await startDockerd({ netns }).catch((err) => {
    netns.remove();
    throw err;
  });
  while (!dockerVersion(engine.host)) await Bun.sleep(5);
  const ms = performance.now() - t0;
  const idle = measureIdle ? await idleCost(() => processTree(engine.pid)) : undefined;
  await engine.stop();
  netns.remove();
  return { ms, idle };
}

const arcboxMs: number[] = [];
const dockerMs: number[] = [];
let arcboxIdle, dockerIdle;
for (let i = 0; i < RUNS; i++) {
  // Alternate the order so neither side always runs on a warmer page cache.
  const last = i === RUNS - 1;
  if (i % 2 === 0) {
    const a = await arcboxRun(last);
    const d = await dockerRun(last);
    arcboxMs.push(a.ms), dockerMs.push(d.ms);
    arcboxIdle ??= a.idle, dockerIdle ??= d.idle;
  } else {
    const d = await dockerRun(last);
    const a = await arcboxRun(last);
    arcboxMs.push(a.ms), dockerMs.push(d.ms);
    arcboxIdle ??= a.idle, dockerIdle ??= d.idle;
  }
  console.log(`run ${i + 1}/${RUNS}: arcbox ${arcboxMs.at(-1)!.toFixed(0)} ms, docker ${dockerMs.at(-1)!.toFixed(0)} ms`);
}

printReport(`ArcBox vs Docker Engine (dockerd ${Bun.spawnSync(["dockerd", "--version"]).stdout.toString().trim()}), ${RUNS} runs, medians`, [
  { metric: "cold start to docker version", unit: "ms", arcbox: median(arcboxMs), docker: median(dockerMs), lowerIsBetter: true },
  { metric: "idle resident memory (all procs)", unit: "MB", arcbox: arcboxIdle!.rss / 1e6, docker: dockerIdle!.rss / 1e6, lowerIsBetter: true },
  { metric: `idle CPU (${IDLE_SECONDS}s, after ${SETTLE_SECONDS}s)`, unit: "ms/min", arcbox: arcboxIdle!.cpuMsPerMin + 0.001, docker: dockerIdle!.cpuMsPerMin + 0.001, lowerIsBetter: true },
]);
