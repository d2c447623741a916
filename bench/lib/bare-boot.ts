/**
 * A bare qemu boot of the guest kernel to a trivial busybox init, the reference for
 * machine boot times (the same code as in bench/machine.ts, shared for bench/vm-mode.ts).
 */
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { guestArtifacts, kernelCmdline } from "../../guest/boot/contract.ts";
import { REPO_ROOT } from "../../lib/entry.ts";

/** A trivial initramfs in `work`: static busybox and an /init that says so, then powers off. */
export function bareInitramfs(work: string): string {
  const root = join(work, "bare");
  mkdirSync(join(root, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(root, "bin", "busybox"));
  writeFileSync(join(root, "init"), "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n/bin/busybox echo BARE-INIT-UP\n/bin/busybox poweroff -f\n");
  chmodSync(join(root, "init"), 0o755);
  const img = join(work, "bare.cpio");
  const p = Bun.spawnSync(["sh", "-c", `cd ${root} && mkdir -p proc && find . | cpio -o -H newc > ${img} 2>/dev/null`]);
  if (p.exitCode !== 0) throw new Error("cannot make the bare initramfs");
  return img;
}

/** Boots the bare VM until its init prints; returns the milliseconds and kills it. */
export async function bareBootMs(initrd: string, o: { accel: string; cpus: number; memoryMib: number }): Promise<number> {
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
      o.accel === "tcg" ? "max" : "host",
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
      kernelCmdline({ machineName: "bare" }),
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
  proc.kill("SIGKILL");
  await proc.exited;
  return ms;
}
