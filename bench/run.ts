/**
 * Container latency, ArcBox against Docker Engine in the same run, with the real docker CLI:
 *   - `docker run --rm <busybox> true` (create, attach, wait, start, exit, remove),
 *   - `docker exec <running container> true`.
 * Both engines use `--network none`: the Docker peer runs with `--bridge=none
 * --iptables=false` (no docker0 here), so that is the only mode both can run. Runs
 * alternate between the engines so background noise hits both alike.
 * Also timed: `docker version` (the CLI's start-up plus two small requests), the floor
 * no engine can go below; "server share" subtracts it, to show each engine's own work.
 * Docker runs in a network namespace of its own (bench/lib/dockerd.ts) and pulls the
 * image from the registry on that namespace's host-side address.
 * VM mode (issue 13) in the same run: a third engine, ArcBox with every container in the
 * engine machine, for --vm-runs rounds (a container start there takes seconds under
 * TCG; KVM is unusable here, so those numbers are the emulator's); --vm-runs 0 leaves
 * it out.
 * Attached output throughput: `docker run --rm IMAGE cat /text` (16 MiB of 11-byte
 * lines in the image, so the container's own work is a cat), read by the bench through
 * the CLI's stdout: MB/s from the first byte to the last (the container's start left
 * out), --out-runs rounds per engine (VM mode too: output goes through the shim's log and
 * attach socket, the agent link and vmm).
 * Usage: bun bench/run.ts [--runs N] [--warmup N] [--vm-runs N] [--out-runs N]
 * Goal: ArcBox at most a third of Docker Engine's time for both.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPeerNetns, startDockerd } from "./lib/dockerd.ts";
import { median, printReport, type Row } from "./lib/report.ts";
import { TestDaemon } from "../tests/helpers/daemon.ts";
import { startRegistry } from "../tests/helpers/registry.ts";
import { buildBusyboxRootfs, pushBusybox, pushImage, tarDirectory } from "../tests/helpers/test-images.ts";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const RUNS = flag("runs", 20);
const WARMUP = flag("warmup", 3);
const VM_RUNS = flag("vm-runs", 5);
const OUT_RUNS = flag("out-runs", 3);
const OUT_BYTES = 16 << 20;

/** busybox plus /text: OUT_BYTES of "abcdefghij\n" lines (text, so the log escapes only newlines). */
async function pushTextImage(reg: Awaited<ReturnType<typeof startRegistry>>): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "bench-text-rootfs-"));
  try {
    buildBusyboxRootfs(dir);
    writeFileSync(join(dir, "text"), Buffer.from("abcdefghij\n".repeat(Math.ceil(OUT_BYTES / 11))).subarray(0, OUT_BYTES));
    return (await pushImage(reg, "busybox-text", "latest", { layers: [tarDirectory(dir)] })).reference;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `docker run --rm IMAGE cat /text`, attached: MB/s from its first output byte to its end. */
async function outputMBps(host: string, image: string): Promise<number> {
  const p = Bun.spawn(["docker", "-H", host, "run", "--rm", "--network", "none", image, "cat", "/text"], { stdout: "pipe", stderr: "pipe" });
  let bytes = 0;
  let first = 0;
  for await (const chunk of p.stdout) {
    if (!bytes) first = performance.now();
    bytes += chunk.length;
  }
  const end = performance.now();
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  if (code !== 0 || bytes !== OUT_BYTES) throw new Error(`docker run cat /text: exit ${code}, ${bytes} of ${OUT_BYTES} bytes: ${err}`);
  return bytes / 1e6 / ((end - first) / 1000);
}

async function docker(host: string, args: string[]): Promise<{ ms: number; code: number; out: string; err: string }> {
  const t = performance.now();
  const p = Bun.spawn(["docker", "-H", host, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { ms: performance.now() - t, code, out, err };
}

/** The VM-mode median, or why there is none (left out with --vm-runs 0). */
const vmMedian = (xs: number[]) => (xs.length ? median(xs) : VM_RUNS > 0 ? "no sample" : undefined);

async function must(host: string, args: string[]): Promise<string> {
  const r = await docker(host, args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.err}`);
  return r.out;
}

const peerNet = createPeerNetns();
const reg = await startRegistry({ hostname: peerNet.hostAddr }).catch((err) => {
  peerNet.remove();
  throw err;
});
const image = (await pushBusybox(reg)).reference;
const textImage = await pushTextImage(reg);
const arcbox = new TestDaemon("bench-run-", {}, undefined, { engine: "host" });
const vm = VM_RUNS > 0 ? new TestDaemon("bench-run-vm-", {}, undefined, { engine: "vm" }) : undefined;
for (const d of [arcbox, vm]) if (d) writeFileSync(join(d.home, "daemon.json"), JSON.stringify({ "insecure-registries": [reg.host] }));
let engine: Awaited<ReturnType<typeof startDockerd>> | undefined;
try {
  // The engine machine boots while the others start (vmm boots it at daemon start).
  await vm?.start();
  await arcbox.start();
  engine = await startDockerd({ netns: peerNet, args: ["--insecure-registry", reg.host] });
  const hosts = { arcbox: arcbox.dockerHost, docker: engine.host, ...(vm ? { vm: vm.dockerHost } : {}) };
  for (const host of Object.values(hosts)) {
    await must(host, ["pull", "-q", image]);
    await must(host, ["pull", "-q", textImage]);
    await must(host, ["run", "-d", "--name", "bench-exec", "--network", "none", image, "sleep", "100000"]);
  }
  const samples = {
    run: { arcbox: [] as number[], docker: [] as number[], vm: [] as number[] },
    exec: { arcbox: [] as number[], docker: [] as number[], vm: [] as number[] },
    cli: { arcbox: [] as number[], docker: [] as number[], vm: [] as number[] },
  };
  // VM mode takes part in the first warm-up round and then in VM_RUNS rounds.
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (const [name, host] of Object.entries(hosts) as [keyof typeof samples.run, string][]) {
      if (name === "vm" && i > 0 && (i < WARMUP || i >= WARMUP + VM_RUNS)) continue;
      const run = await docker(host, ["run", "--rm", "--network", "none", image, "true"]);
      if (run.code !== 0) throw new Error(`${name}: docker run failed: ${run.err}`);
      const exec = await docker(host, ["exec", "bench-exec", "true"]);
      if (exec.code !== 0) throw new Error(`${name}: docker exec failed: ${exec.err}`);
      const cli = await docker(host, ["version", "--format", "{{.Server.APIVersion}}"]);
      if (cli.code !== 0) throw new Error(`${name}: docker version failed: ${cli.err}`);
      if (i < WARMUP) continue;
      samples.run[name].push(run.ms);
      samples.exec[name].push(exec.ms);
      samples.cli[name].push(cli.ms);
    }
  }
  const out = { arcbox: [] as number[], docker: [] as number[], vm: [] as number[] };
  for (let i = 0; i < OUT_RUNS; i++) for (const [name, host] of Object.entries(hosts) as [keyof typeof out, string][]) out[name].push(await outputMBps(host, textImage));
  const rows: Row[] = [
    { metric: "docker run --rm busybox true", unit: "ms", arcbox: median(samples.run.arcbox), docker: median(samples.run.docker), lowerIsBetter: true, vm: vmMedian(samples.run.vm) },
    { metric: "docker exec <c> true", unit: "ms", arcbox: median(samples.exec.arcbox), docker: median(samples.exec.docker), lowerIsBetter: true, vm: vmMedian(samples.exec.vm) },
    { metric: "docker version (CLI floor)", unit: "ms", arcbox: median(samples.cli.arcbox), docker: median(samples.cli.docker), lowerIsBetter: true, vm: vmMedian(samples.cli.vm) },
    { metric: "attached output, 16 MiB text", unit: "MB/s", arcbox: median(out.arcbox), docker: median(out.docker), lowerIsBetter: false, vm: vm ? median(out.vm) : undefined },
  ];
  printReport(`container latency, --network none on both (median of ${RUNS} runs after ${WARMUP} warm-up; VM mode: ${VM_RUNS} runs)`, rows);
  if (vm) console.log(`VM mode samples: run ${samples.run.vm.map(Math.round).join(", ")} ms; exec ${samples.exec.vm.map(Math.round).join(", ")} ms`);
  const mbps = (xs: number[]) => xs.map((x) => x.toFixed(1)).join(", ");
  console.log(`attached output samples (MB/s): arcbox ${mbps(out.arcbox)}; docker ${mbps(out.docker)}${vm ? `; vm ${mbps(out.vm)}` : ""}`);
  const floor = Math.min(rows[2]!.arcbox, rows[2]!.docker);
  for (const r of rows.slice(0, 2))
    console.log(`${r.metric}: server share (minus the CLI floor, ${floor.toFixed(1)} ms): arcbox ${(r.arcbox - floor).toFixed(1)} ms, docker ${(r.docker - floor).toFixed(1)} ms`);
  for (const r of rows.slice(0, 2)) console.log(`${r.metric}: ratio ${(r.arcbox / r.docker).toFixed(3)} ${r.arcbox / r.docker <= 1 / 3 ? "meets" : "misses"} the goal (<= 0.333)`);
  const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;
  console.log(
    `p90 run: arcbox ${p90(samples.run.arcbox).toFixed(1)} ms, docker ${p90(samples.run.docker).toFixed(1)} ms; p90 exec: arcbox ${p90(samples.exec.arcbox).toFixed(1)} ms, docker ${p90(samples.exec.docker).toFixed(1)} ms`,
  );
} finally {
  await docker(arcbox.dockerHost, ["rm", "-f", "bench-exec"]).catch(() => {});
  if (vm) await docker(vm.dockerHost, ["rm", "-f", "bench-exec"]).catch(() => {});
  await vm?.dispose();
  if (engine) await docker(engine.host, ["rm", "-f", "bench-exec"]).catch(() => {});
  await arcbox.dispose();
  await engine?.stop();
  await reg.stop();
  peerNet.remove();
}
