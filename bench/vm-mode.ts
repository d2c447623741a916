/**
 * VM mode (issue 13) against a bare boot and against host mode, in one run:
 *   - `arcbox start --vm` (fresh home) until the first `docker run --rm IMAGE true`
 *     succeeds, vs a bare qemu boot of the same kernel (same accelerator, CPUs, memory)
 *     to a trivial init; goal 1.3x;
 *   - `docker run --rm IMAGE true` in VM mode vs host mode (medians), and where the VM
 *     runs spend their time in the machine: the agent's per-phase trace
 *     (guest/platform/phase-trace.ts), medians per operation and phase;
 *   - the engine machine's memory on the host (qemu's PSS): idle, while N containers
 *     each hold some memory in the machine, and 10, 20 and 60 s after they exited (the
 *     guest's free page reporting hands freed pages back to qemu, which drops them).
 * Under TCG (no usable KVM here) the absolute numbers are the emulator's, not a VM's.
 * Usage: bun bench/vm-mode.ts [--runs N]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon } from "../tests/helpers/daemon.ts";
import { buildBusyboxRootfs } from "../tests/helpers/test-images.ts";
import { bareBootMs, bareInitramfs } from "./lib/bare-boot.ts";
import { pssBytes } from "./lib/proc-stats.ts";
import { median } from "./lib/report.ts";
import { GUEST_PHASE_TRACE } from "../guest/vm/engine-layout.ts";

/** "create <id> layers=12 overlay=3 ... total=900" lines: per operation, each phase's values. */
function phaseMedians(text: string): Map<string, Map<string, number[]>> {
  const out = new Map<string, Map<string, number[]>>();
  for (const line of text.split("\n")) {
    const [op, , ...parts] = line.trim().split(" ");
    if (!op || parts.length === 0) continue;
    const m = out.get(op) ?? new Map<string, number[]>();
    out.set(op, m);
    for (const p of parts) {
      const [k, v] = p.split("=");
      if (k && v) m.set(k, [...(m.get(k) ?? []), Number(v)]);
    }
  }
  return out;
}

const i = process.argv.indexOf("--runs");
const RUNS = i > 0 ? Number(process.argv[i + 1]) : 3;
const IMAGE = "bench-busybox:1";
const work = mkdtempSync(join(tmpdir(), "bench-vm-mode-"));

async function importBusybox(d: TestDaemon): Promise<void> {
  const root = join(work, `rootfs-${d.engine}`);
  buildBusyboxRootfs(root);
  const tar = Bun.spawnSync(["tar", "--numeric-owner", "-C", root, "-cf", "-", "."]).stdout;
  const imp = Bun.spawn(["docker", "-H", d.dockerHost, "import", "-", IMAGE], { stdin: tar, stdout: "ignore", stderr: "pipe" });
  if ((await imp.exited) !== 0) throw new Error(`docker import: ${await new Response(imp.stderr).text()}`);
}

async function runTrue(d: TestDaemon): Promise<number> {
  const t = performance.now();
  const r = await d.docker(["run", "--rm", IMAGE, "true"], { timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`docker run (${d.engine}): ${r.stderr}`);
  return performance.now() - t;
}

const HOLDERS = 3;
const HOLD_MIB = 200;

/**
 * qemu's PSS: idle, with HOLDERS containers each holding HOLD_MIB MiB (a tmpfs file, so
 * the pages are really touched), and 10 and 20 s after they were removed.
 */
type Memory = { pss: number; ram: number; guestFree: number };
async function memoryGivenBack(d: TestDaemon): Promise<{ idle: Memory; held: Memory; after10: Memory; after20: Memory; after60: Memory }> {
  const qemu = Number((await Bun.file(join(d.home, "data", "vmm", "machines", "arcbox-engine", "qemu.pid")).text()).trim());
  // qemu's PSS, and what the guest itself counts free (MemFree), in bytes.
  const guestFree = async () => {
    const r = await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "cat", "/proc/meminfo"], { timeoutMs: 300_000 });
    return Number(/^MemFree:\s+(\d+) kB/m.exec(r.stdout)?.[1] ?? 0) * 1024;
  };
  // The guest's RAM is qemu's only shared memory (a memfd); the rest is qemu's own (under
  // TCG mostly its translated-code cache).
  const ram = () => Number(/^Pss_Shmem:\s+(\d+) kB/m.exec(readFileSync(`/proc/${qemu}/smaps_rollup`, "utf8"))?.[1] ?? 0) * 1024;
  const pss = async () => ({ pss: pssBytes([qemu]), ram: ram(), guestFree: await guestFree() });
  const idle = await pss();
  const names = Array.from({ length: HOLDERS }, (_, n) => `bench-hold-${n}`);
  for (const name of names) {
    const r = await d.docker(["run", "-d", "--name", name, "--tmpfs", `/hold:size=${HOLD_MIB + 16}m`, IMAGE, "sh", "-c", `head -c ${HOLD_MIB}m /dev/zero > /hold/x && touch /hold/done && sleep 600`], {
      timeoutMs: 600_000,
    });
    if (r.code !== 0) throw new Error(`docker run (memory holder): ${r.stderr}`);
  }
  for (const name of names) {
    for (let t = 0; t < 300; t++) {
      if ((await d.docker(["exec", name, "test", "-e", "/hold/done"], { timeoutMs: 120_000 })).code === 0) break;
      await Bun.sleep(1000);
    }
  }
  const held = await pss();
  const rm = await d.docker(["rm", "-f", ...names], { timeoutMs: 600_000 });
  if (rm.code !== 0) throw new Error(`docker rm: ${rm.stderr}`);
  await Bun.sleep(10_000);
  const after10 = await pss();
  await Bun.sleep(10_000);
  const after20 = await pss();
  // The guest reports free pages in passes 2 s apart, each a part of the free lists.
  await Bun.sleep(40_000);
  return { idle, held, after10, after20, after60: await pss() };
}

const vm = new TestDaemon("bench-vm-", {}, undefined, { engine: "vm" });
const host = new TestDaemon("bench-host-", {}, undefined, { engine: "host" });
try {
  const cpus = Number(process.env.ARCBOX_ENGINE_CPUS ?? 2);
  const memoryMib = Number(process.env.ARCBOX_ENGINE_MEMORY_MIB ?? 2048);
  const initrd = bareInitramfs(work);
  const bare: number[] = [];
  for (let r = 0; r < RUNS; r++) bare.push(await bareBootMs(initrd, { accel: "tcg", cpus, memoryMib }));

  const t0 = performance.now();
  await vm.start();
  await importBusybox(vm);
  await runTrue(vm);
  const firstRun = performance.now() - t0;

  await host.start();
  await importBusybox(host);
  await runTrue(host);
  // The agent traces phases while this file exists in the machine.
  const trace = (cmd: string) => vm.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "sh", "-c", cmd], { timeoutMs: 300_000 });
  await trace(`: > ${GUEST_PHASE_TRACE}`);
  const vmRuns: number[] = [];
  const hostRuns: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    vmRuns.push(await runTrue(vm));
    hostRuns.push(await runTrue(host));
  }
  const phases = phaseMedians((await trace(`cat ${GUEST_PHASE_TRACE}; rm -f ${GUEST_PHASE_TRACE}`)).stdout);
  const memory = await memoryGivenBack(vm);
  const ms = (v: number) => `${Math.round(v)} ms`;
  console.log(`accelerator: tcg (KVM unusable here); load average ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`);
  console.log(`bare boot to init (median of ${RUNS}):            ${ms(median(bare))}  [${bare.map(Math.round).join(", ")}]`);
  console.log(`arcbox start --vm to first docker run --rm:   ${ms(firstRun)}  (${(firstRun / median(bare)).toFixed(2)}x bare; goal 1.3x)`);
  console.log(`docker run --rm true, VM mode (median):       ${ms(median(vmRuns))}  [${vmRuns.map(Math.round).join(", ")}]`);
  console.log(`docker run --rm true, host mode (median):     ${ms(median(hostRuns))}  [${hostRuns.map(Math.round).join(", ")}]  (VM/host ${(median(vmRuns) / median(hostRuns)).toFixed(1)}x)`);
  console.log("in the machine, per VM run (medians, ms):");
  for (const [op, parts] of phases) console.log(`  ${op.padEnd(7)} ${[...parts].map(([k, v]) => `${k}=${Math.round(median(v))}`).join(" ")}`);
  const mib = (m: Memory) => `${Math.round(m.pss / 2 ** 20)} MiB (guest RAM ${Math.round(m.ram / 2 ** 20)}; guest MemFree ${Math.round(m.guestFree / 2 ** 20)} MiB)`;
  console.log(`engine machine memory, qemu PSS: idle ${mib(memory.idle)}`);
  console.log(`  ${HOLDERS} containers holding ${HOLD_MIB} MiB each: ${mib(memory.held)}`);
  console.log(`  10 s after they were removed: ${mib(memory.after10)}; 20 s: ${mib(memory.after20)}; 60 s: ${mib(memory.after60)}`);
} finally {
  await Promise.all([vm.dispose(), host.dispose()]);
  rmSync(work, { recursive: true, force: true });
}
