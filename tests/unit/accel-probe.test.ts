/**
 * vmm's accelerator probe against stand-in qemu binaries (shell scripts): a boot that
 * prints the kernel's banner, one that fails as KVM does on some hosts, one that hangs,
 * and a probe whose vmm is killed mid-probe, which must not leave its qemu running.
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootProbe, chooseAccelerator } from "../../services/vmm/backend/qemu/accel-probe.ts";

const dir = mkdtempSync(join(tmpdir(), "arcbox-accel-probe-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in qemu: writes its pid to <name>.pid, then runs `body`. */
function fakeQemu(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho $$ > ${path}.pid\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.startsWith("Z");
  } catch {
    return false;
  }
};

test("a kernel banner on the console means the accelerator works, and the probe VM is stopped", async () => {
  const qemu = fakeQemu("boots", 'echo "Linux version 6.1.0-test"; exec sleep 300');
  expect(await bootProbe(qemu, "kvm", "/nonexistent/vmlinuz", 10_000)).toBe("");
  expect(alive(Number(readFileSync(`${qemu}.pid`, "utf8")))).toBe(false);
});

test("qemu's error is the reason given", async () => {
  const qemu = fakeQemu("fails", 'echo "qemu-system-x86_64: error: failed to set MSR 0x10a" >&2; exit 1');
  expect(await bootProbe(qemu, "kvm", "/nonexistent/vmlinuz", 10_000)).toBe("failed to set MSR 0x10a");
});

test("a guest that never prints is given up after the timeout", async () => {
  const qemu = fakeQemu("hangs", 'echo "Probing EDD (edd=off to disable)... ok"; exec sleep 300');
  const started = performance.now();
  expect(await bootProbe(qemu, "kvm", "/nonexistent/vmlinuz", 500)).toBe("no boot within 0.5s");
  expect(performance.now() - started).toBeLessThan(5_000);
  expect(alive(Number(readFileSync(`${qemu}.pid`, "utf8")))).toBe(false);
});

test("the probe's qemu dies with vmm when vmm is killed mid-probe", async () => {
  const qemu = fakeQemu("orphan", "exec sleep 300");
  const probeModule = join(import.meta.dir, "../../services/vmm/backend/qemu/accel-probe.ts");
  const vmm = Bun.spawn(["bun", "-e", `import { bootProbe } from ${JSON.stringify(probeModule)}; await bootProbe(${JSON.stringify(qemu)}, "kvm", "/nonexistent", 60_000);`], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const deadline = Date.now() + 10_000;
  while (!existsSync(`${qemu}.pid`) && Date.now() < deadline) await Bun.sleep(20);
  const pid = Number(readFileSync(`${qemu}.pid`, "utf8"));
  expect(alive(pid)).toBe(true);
  vmm.kill("SIGKILL");
  await vmm.exited;
  const gone = Date.now() + 3_000;
  while (alive(pid) && Date.now() < gone) await Bun.sleep(20);
  const survived = alive(pid);
  if (survived) process.kill(pid, "SIGKILL");
  expect(survived).toBe(false);
});

test("a TCG choice read from the cache is still said in the log, and no VM is booted", async () => {
  const qemu = fakeQemu("cached", 'echo "Linux version 6.1.0-test"; exec sleep 300');
  const cacheFile = join(dir, "accel.json");
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (msg: string) => warnings.push(msg) };
  const kernel = join(dir, "vmlinuz");
  writeFileSync(kernel, "");
  // First call: probes (the stand-in boots, so KVM would be chosen where /dev/kvm opens).
  const first = await chooseAccelerator({ binary: qemu, kernel, cacheFile, log });
  const key = (JSON.parse(readFileSync(cacheFile, "utf8")) as { key: string }).key;
  writeFileSync(cacheFile, JSON.stringify({ key, accel: "tcg", note: "kvm unusable: test" }));
  rmSync(`${qemu}.pid`, { force: true });
  warnings.length = 0;
  expect(await chooseAccelerator({ binary: qemu, kernel, cacheFile, log })).toEqual({ accel: "tcg", note: "kvm unusable: test" });
  expect(warnings).toEqual(["machines run under TCG (software emulation, slower)"]);
  expect(existsSync(`${qemu}.pid`)).toBe(false); // answered from the cache
  expect(["kvm", "tcg"]).toContain(first.accel);
});
