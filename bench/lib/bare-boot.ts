/**
 * A bare qemu boot of the guest kernel to a trivial busybox init, the reference for
 * machine boot times (bench/machine.ts, bench/vm-mode.ts).
 */
import type { Subprocess } from "bun";
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { guestArtifacts, kernelCmdline } from "../../guest/boot/contract.ts";
import { REPO_ROOT } from "../../lib/entry.ts";
import { TCG_CPU } from "../../services/vmm/backend/qemu/qemu-argv.ts";

/**
 * A trivial initramfs in `work`: static busybox and an /init that says so, then powers
 * off, or idles in `sleep` when the kernel command line has `bare.idle`.
 */
export function bareInitramfs(work: string): string {
  const root = join(work, "bare");
  mkdirSync(join(root, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin", "busybox"));
  writeFileSync(
    join(root, "init"),
    "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n/bin/busybox echo BARE-INIT-UP\n/bin/busybox grep -q bare.idle /proc/cmdline && exec /bin/busybox sleep 1000000\n/bin/busybox poweroff -f\n",
  );
  chmodSync(join(root, "init"), 0o755);
  const img = join(work, "bare.cpio");
  const p = Bun.spawnSync(["sh", "-c", `cd ${root} && mkdir -p proc && find . | cpio -o -H newc > ${img} 2>/dev/null`]);
  if (p.exitCode !== 0) throw new Error("cannot make the bare initramfs");
  return img;
}

export interface BareBootOptions {
  accel: string;
  cpus: number;
  memoryMib: number;
  /** Keep the VM running in `sleep` after its init has printed (idle measurements). */
  idle?: boolean;
}

/** Boots the bare VM; resolves with the ms until its init printed, and the running qemu. */
export async function bareBoot(initrd: string, o: BareBootOptions): Promise<{ ms: number; proc: Subprocess<"ignore", "pipe", "ignore"> }> {
  const guest = guestArtifacts(REPO_ROOT);
  const t0 = performance.now();
  const proc = Bun.spawn(
    [
      "qemu-system-x86_64",
      "-M",
      "microvm",
      "-accel",
      o.accel,
      "-cpu",
      o.accel === "tcg" ? TCG_CPU : "host",
      "-smp",
      String(o.cpus),
      "-m",
      String(o.memoryMib),
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-no-reboot",
      "-kernel",
      guest.kernel,
      "-initrd",
      initrd,
      "-append",
      kernelCmdline({ machineName: "bare", extra: o.idle ? ["bare.idle"] : [] }),
      "-serial",
      "stdio",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "ignore" },
  );
  let seen = "";
  const dec = new TextDecoder();
  const reader = proc.stdout.getReader();
  while (!seen.includes("BARE-INIT-UP")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += dec.decode(value, { stream: true });
  }
  const ms = performance.now() - t0;
  // Keep draining the console: a full pipe makes the guest spin on its UART.
  void (async () => {
    while (!(await reader.read()).done);
  })().catch(() => {});
  return { ms, proc };
}

/** Boots the bare VM until its init prints; returns the milliseconds and kills it. */
export async function bareBootMs(initrd: string, o: BareBootOptions): Promise<number> {
  const { ms, proc } = await bareBoot(initrd, o);
  proc.kill("SIGKILL");
  await proc.exited;
  return ms;
}
