/**
 * What vmm needs to boot a machine with the guest pieces (VM-CONTRACT.md): where
 * scripts/build-guest.sh put them, the name of the agent's virtio-serial port and the
 * kernel command line the guest's /init expects.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_MACHINE } from "../../lib/engine-mode.ts";
import { ArcboxError } from "../../lib/errors.ts";
import { mountsArg, type GuestMount } from "./mounts-arg.ts";

/** qemu: `-device virtserialport,chardev=agent,name=<this>`; guest: /dev/virtio-ports/<this>. */
export const AGENT_SERIAL_PORT = "org.arcbox.agent.0";

export interface GuestArtifacts {
  /** -kernel */
  kernel: string;
  /** -initrd */
  initrd: string;
  /** the second virtio-blk disk (/dev/vdb, readonly=on): squashfs mounted at /opt/arcbox */
  tools: string;
}

/** The built guest pieces; throws when they are missing. */
export function guestArtifacts(repoRoot: string): GuestArtifacts {
  const dir = join(repoRoot, "build", "guest");
  const a = { kernel: join(dir, "vmlinuz"), initrd: join(dir, "initramfs.img"), tools: join(dir, "tools.img") };
  const missing = Object.values(a).filter((p) => !existsSync(p));
  if (missing.length) throw new ArcboxError("failed_precondition", `guest artifacts missing (${missing.join(", ")}): run scripts/build-guest.sh`);
  return a;
}

/** Host CPU clock in kHz from /proc/cpuinfo (undefined off Linux). */
function hostTscKhz(): number | undefined {
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m ? Math.round(Number(m[1])) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The kernel command line. reboot=t: a guest reboot is a triple fault, which ends qemu
 * under -no-reboot (the ACPI/keyboard-controller paths hang on microvm). tsc_early_khz:
 * under TCG the kernel's TSC calibration may hang without it. arcbox.name: the hostname;
 * arcbox.role=engine: the engine machine (VM mode).
 */
export function kernelCmdline(o: { machineName: string; extra?: string[]; mounts?: GuestMount[] }): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(o.machineName)) throw new ArcboxError("invalid_argument", `invalid machine name: ${o.machineName}`);
  const khz = hostTscKhz();
  return [
    "console=ttyS0",
    "reboot=t",
    "panic=-1",
    ...(khz ? [`tsc_early_khz=${khz}`] : []),
    // The TSC is steady in a VM, but under TCG on a busy host the clocksource watchdog
    // sees it drift against the (late) timer ticks, marks it unstable and falls back to
    // jiffies: no high-resolution timers, no tickless idle (a 250 Hz tick costs host CPU
    // while the machine idles) and 4 ms clock steps.
    "tsc=reliable",
    // The crypto self-tests cost boot time (most under TCG) and guard against nothing here.
    "cryptomgr.notests",
    "root=/dev/vda",
    "rw",
    "quiet",
    `arcbox.name=${o.machineName}`,
    // The engine machine is ready for `docker run` only once its agent serves: stage 2
    // gives that agent the vCPU first, where other machines' first execs come first.
    ...(o.machineName === ENGINE_MACHINE ? ["arcbox.role=engine"] : []),
    ...[mountsArg(o.mounts ?? [])].filter((a) => a !== undefined),
    ...(o.extra ?? []),
  ].join(" ");
}
