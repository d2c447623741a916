/**
 * Where the guest's kernel, initramfs and tools image are, and the kernel command line
 * of a machine. A thin seam over guest/boot/contract.ts (owned by the guest side).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../../lib/entry.ts";
import { MachineError } from "../core/machine-error.ts";

export interface GuestBoot {
  kernel: string;
  initrd: string;
  tools: string;
  cmdline(machineName: string): string;
}

function hostKhz(): number {
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return m ? Math.round(Number(m[1]) * 1000) : 0;
}

export function guestBoot(repoRoot = REPO_ROOT): GuestBoot {
  const dir = process.env.ARCBOX_GUEST_DIR ?? join(repoRoot, "build", "guest");
  const kernel = join(dir, "vmlinuz");
  const initrd = join(dir, "initramfs.img");
  const tools = join(dir, "tools.img");
  for (const f of [kernel, initrd, tools]) {
    if (!existsSync(f)) throw new MachineError("failed_precondition", `guest file ${f} is missing: run scripts/build-guest.sh`);
  }
  const khz = hostKhz();
  return {
    kernel,
    initrd,
    tools,
    cmdline: (name) => ["console=ttyS0", "reboot=t", "panic=-1", ...(khz ? [`tsc_early_khz=${khz}`] : []), "root=/dev/vda", "rw", "quiet", `arcbox.name=${name}`].join(" "),
  };
}
