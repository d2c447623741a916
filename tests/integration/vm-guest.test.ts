/**
 * The guest side of machines, booted with qemu directly (no vmm): the kernel, initramfs
 * and tools image from scripts/build-guest.sh, a busybox root disk, and the agent
 * protocol over the virtio-serial chardev. KVM where it works, TCG (-cpu max) otherwise.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type AgentSession, Machine, busyboxRootDisk, ensureGuestArtifacts, openSession, probeAccel } from "../helpers/qemu.ts";

const BOOT_TIMEOUT = 240_000;
let dir: string;
let machine: Machine;
let session: AgentSession;
let accel: "kvm" | "tcg";

beforeAll(async () => {
  const g = ensureGuestArtifacts();
  dir = mkdtempSync(join(tmpdir(), "arcbox-vmguest-"));
  accel = await probeAccel(g.kernel);
  machine = new Machine({ dir, name: "guest-test", rootDisk: busyboxRootDisk(dir), accel });
  session = await openSession(machine, BOOT_TIMEOUT);
  console.log(`[vm-guest] ${accel}: agent session ${((performance.now() - machine.spawnedAt) / 1000).toFixed(2)} s after qemu spawn`);
}, BOOT_TIMEOUT + 60_000);

afterAll(async () => {
  session?.close();
  if (machine && machine.proc.exitCode === null) await machine.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the agent answers over virtio-serial inside the VM", async () => {
  const r = await session.call("containerStates", {});
  expect(r.containers).toEqual([]);
  // Booted through our initramfs and stage 2: the hostname is the machine's name.
  expect(machine.console()).not.toContain("arcbox init:");
});
