/**
 * Machines (VMs) against a bare qemu boot of the same kernel, in the same run:
 *   - start to first exec: `arcbox machine start` until `machine exec -- true` succeeds,
 *     vs a bare qemu (same machine type, accelerator, CPUs, memory, kernel) booting a
 *     trivial busybox init until it prints on the console;
 *   - idle host CPU of a running machine (qemu + vmm) over a window vs the bare qemu idle;
 *   - qemu's PSS after the guest allocates 512 MB and frees it again in pieces under 2 MiB
 *     (free page reporting).
 * Usage: bun bench/machine.ts [--runs N] [--idle-seconds S] [--settle-seconds S] [--profile] [--start-only]
 *   --profile: after each start, the phase table of the start path (host marks, vmm's
 *     log, the guest's boot trace /run/arcbox/boot-trace and its kernel log);
 *   --start-only: skip the idle CPU and memory measurements.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../lib/entry.ts";
import { buildBusyboxRootfs } from "../tests/helpers/test-images.ts";
import { bareBoot, bareInitramfs } from "./lib/bare-boot.ts";
import { cpuTicks } from "./lib/proc-stats.ts";
import { median } from "./lib/report.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("--runs", 3);
const IDLE_SECONDS = arg("--idle-seconds", 60);
const SETTLE_SECONDS = arg("--settle-seconds", 15);
const PROFILE = process.argv.includes("--profile");
const START_ONLY = process.argv.includes("--start-only");
const MEMORY_MIB = 1024;
const ARCBOX = join(REPO_ROOT, "bin", "arcbox");
const work = mkdtempSync(join(tmpdir(), "bench-machine-"));
const home = join(work, "home");

function sh(argv: string[], stdin?: Uint8Array): string {
  const p = Bun.spawnSync(argv, { stdin: stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${p.stderr}`);
  return p.stdout.toString();
}
const arcbox = (...args: string[]) => sh([ARCBOX, "--home", home, ...args]);
const inspect = (name: string) => JSON.parse(arcbox("machine", "inspect", name)) as { Pid: number; Accel: string; AccelNote: string };

/** PSS of one process in bytes (smaps_rollup). */
function pssBytes(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

async function idleCpuMsPerMin(pids: () => number[]): Promise<number> {
  await Bun.sleep(SETTLE_SECONDS * 1000);
  const t0 = cpuTicks(pids());
  await Bun.sleep(IDLE_SECONDS * 1000);
  return ((cpuTicks(pids()) - t0) * 10 * 60) / IDLE_SECONDS;
}

try {
  arcbox("start");
  const rootfs = join(work, "rootfs");
  buildBusyboxRootfs(rootfs);
  sh(["docker", "-H", `unix://${join(home, "run", "docker.sock")}`, "import", "-", "bench-busybox:1"], sh2tar(rootfs));
  arcbox("machine", "create", "bench", "--image", "bench-busybox:1", "--cpus", "1", "--memory", String(MEMORY_MIB), "--disk", "2", "--no-start", "--no-home");
  const initrd = bareInitramfs(work);

  const machineMs: number[] = [];
  const bareMs: number[] = [];
  let accel = "";
  for (let i = 0; i < RUNS; i++) {
    const wall0 = Date.now();
    const t0 = performance.now();
    arcbox("machine", "start", "bench");
    const tStarted = performance.now();
    sh([ARCBOX, "--home", home, "machine", "exec", "bench", "--", "true"]);
    machineMs.push(performance.now() - t0);
    if (PROFILE) printPhases(wall0, tStarted - t0, performance.now() - tStarted);
    accel = inspect("bench").Accel;
    if (i < RUNS - 1) arcbox("machine", "stop", "bench");
    const bare = await bareBoot(initrd, { accel, cpus: 1, memoryMib: MEMORY_MIB });
    bareMs.push(bare.ms);
    bare.proc.kill("SIGKILL");
    await bare.proc.exited;
    console.log(`run ${i + 1}/${RUNS}: machine start->exec ${machineMs.at(-1)!.toFixed(0)} ms, bare boot ${bare.ms.toFixed(0)} ms`);
  }
  const m = inspect("bench");
  const vmmPid = Number(/^vmm\s+\w+\s+(\d+)/m.exec(arcbox("status"))?.[1]);

  const ratio = median(machineMs) / median(bareMs);
  console.log(`\nMachines vs bare qemu (accel ${accel}${m.AccelNote ? `: ${m.AccelNote}` : ""}), ${RUNS} runs, medians`);
  console.log(`start -> first exec          ${median(machineMs).toFixed(0)} ms   bare boot to init ${median(bareMs).toFixed(0)} ms   ratio ${ratio.toFixed(2)} (goal <= 1.3)`);
  if (!START_ONLY) {
    // Idle: the running machine (its qemu, and vmm) vs a bare qemu idling in `sleep`.
    const machineIdle = await idleCpuMsPerMin(() => [m.Pid]);
    const vmmIdle = await idleCpuMsPerMin(() => [vmmPid]);
    const bareIdleVm = await bareBoot(initrd, { accel, cpus: 1, memoryMib: MEMORY_MIB, idle: true });
    if (bareIdleVm.proc.exitCode !== null) throw new Error("the idle bare VM exited");
    const bareIdle = await idleCpuMsPerMin(() => [bareIdleVm.proc.pid]);
    if (bareIdleVm.proc.exitCode !== null) throw new Error("the idle bare VM exited during the measurement");
    bareIdleVm.proc.kill("SIGKILL");

    // Memory: allocate 512 MB in the guest (tmpfs) in 1 MiB files with a page of a file on
    // the root disk after each (kept, cached), free the tmpfs: the freed memory is in
    // pieces under 2 MiB. Free page reporting must return it.
    const pss0 = pssBytes(m.Pid);
    arcbox(
      "machine",
      "exec",
      "bench",
      "--",
      "sh",
      "-c",
      "mkdir -p /mnt/t /root/keep && mount -t tmpfs -o size=600m tmpfs /mnt/t && i=0; while [ $i -lt 512 ]; do printf '%1048576s' '' > /mnt/t/$i; echo x > /root/keep/$i; i=$((i+1)); done",
    );
    const pssFull = pssBytes(m.Pid);
    arcbox("machine", "exec", "bench", "--", "sh", "-c", "umount /mnt/t");
    await Bun.sleep(10_000);
    const pssFreed = pssBytes(m.Pid);
    await Bun.sleep(20_000);
    const pssFreed30 = pssBytes(m.Pid);
    arcbox("machine", "exec", "bench", "--", "rm", "-rf", "/root/keep");

    console.log(`idle CPU over ${IDLE_SECONDS}s            machine qemu ${machineIdle.toFixed(1)} ms/min, vmm ${vmmIdle.toFixed(1)} ms/min, bare qemu ${bareIdle.toFixed(1)} ms/min`);
    console.log(`  beyond bare qemu: ${(((machineIdle + vmmIdle - bareIdle) / 60_000) * 100).toFixed(3)} % of a core (goal < 0.05 %)`);
    console.log(
      `qemu PSS                     idle ${(pss0 / 1e6).toFixed(0)} MB, with 512 MB allocated ${(pssFull / 1e6).toFixed(0)} MB, 10 s after freeing ${(pssFreed / 1e6).toFixed(0)} MB, 30 s ${(pssFreed30 / 1e6).toFixed(0)} MB`,
    );
  }
} finally {
  Bun.spawnSync([ARCBOX, "--home", home, "machine", "rm", "-f", "bench"]);
  Bun.spawnSync([ARCBOX, "--home", home, "stop"]);
  Bun.spawnSync(["pkill", "-KILL", "-f", home]);
  rmSync(work, { recursive: true, force: true });
}

/**
 * The start path, phase by phase. Host times come from this process and vmm's log (ms
 * since \`machine start\` was called); guest times from the guest's uptime clock (its
 * boot trace and kernel log). The guest clock starts after qemu has set up and the
 * kernel has decompressed itself: that part is the residual "qemu + pre-kernel" row.
 */
function printPhases(wall0: number, startMs: number, execMs: number): void {
  const vmmLog = readFileSync(join(home, "log", "vmm.log"), "utf8").split("\n");
  const at = (re: RegExp) => {
    const line = vmmLog.filter((l) => re.test(l) && Date.parse(l.slice(0, 24)) >= wall0).at(0);
    return line ? Date.parse(line.slice(0, 24)) - wall0 : NaN;
  };
  const qemuAt = at(/started qemu machine=bench/);
  const runningAt = at(/machine running machine=bench/);
  const trace = arcbox("machine", "exec", "bench", "--", "cat", "/run/arcbox/boot-trace")
    .trim()
    .split("\n")
    .map((l) => l.split(" "))
    .map(([t, name]) => ({ t: Number(t) * 1000, name: name! }))
    .sort((a, b) => a.t - b.t);
  const dmesg = arcbox("machine", "exec", "bench", "--", "dmesg");
  const runInit = /^\[\s*([\d.]+)\] Run \/init/m.exec(dmesg);
  const g = (name: string) => trace.find((m) => m.name === name)?.t ?? NaN;
  const rows: [string, number][] = [
    ["host: CLI + vmm + netd attach + disk, to qemu spawn", qemuAt],
    ["guest: kernel boot to /init", runInit ? Number(runInit[1]) * 1000 : NaN],
  ];
  let prev = runInit ? Number(runInit[1]) * 1000 : 0;
  for (const m of trace) {
    rows.push([`guest: ... to mark "${m.name}"`, m.t - prev]);
    prev = m.t;
  }
  // The guest's SYNC leaves when the relay links the first session (relay-sync); older
  // tools images have no such mark.
  const readyUp = Number.isNaN(g("relay-sync")) ? g("agent-ready") : g("relay-sync");
  rows.push(["host: qemu spawn to guest clock 0 (+ SYNC to vmm)", runningAt - qemuAt - readyUp]);
  rows.push(["host: vmm 'running' to CLI start returned", startMs - runningAt]);
  rows.push(["host: machine exec -- true (CLI, CreateExec, agent)", execMs]);
  console.log("  phase                                                ms");
  for (const [name, ms] of rows) console.log(`  ${name.padEnd(52)}${ms.toFixed(0).padStart(6)}`);
  console.log(`  ${"total".padEnd(52)}${(startMs + execMs).toFixed(0).padStart(6)}`);
}

function sh2tar(dir: string): Uint8Array {
  return Bun.spawnSync(["tar", "--numeric-owner", "-C", dir, "-cf", "-", "."]).stdout;
}
