/**
 * Powering the machine off from inside (the agent's Poweroff): flush and remount the
 * root read-only, then reboot(2) through busybox. Power-off goes through ACPI; should
 * that not end the VM, a reboot does (the kernel runs with reboot=t, a triple fault,
 * which ends qemu under -no-reboot).
 *
 * The root must end up read-only: only then has ext4 committed its journal and marked
 * itself clean, so the next boot mounts it without a journal replay. A plain remount
 * fails (EBUSY) while any process holds a file open for writing there (a container's
 * file, a log); the kernel's emergency remount (sysrq "u") forces it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import type { Logger } from "../../lib/log.ts";
import { runTool, toolPath } from "./run-tool.ts";

const FALLBACK_AFTER_MS = 3_000;
/** How long the emergency remount (a kernel worker) may take before we power off anyway. */
const EMERGENCY_REMOUNT_MS = 5_000;

export async function powerOffMachine(log: Logger): Promise<void> {
  log.info("powering off");
  await runTool([toolPath("sync")]);
  const ro = await runTool([toolPath("mount"), "-o", "remount,ro", "/"]);
  if (ro.code !== 0 && !(await forceReadOnly())) log.warn("root stays read-write for power-off", { error: ro.stderr.trim() });
  await runTool([toolPath("poweroff"), "-f"]);
  setTimeout(() => void runTool([toolPath("reboot"), "-f"]), FALLBACK_AFTER_MS);
}

/** The root's mount options include "ro". */
export function rootIsReadOnly(mounts = readFileSync("/proc/mounts", "utf8")): boolean {
  const root = mounts
    .split("\n")
    .map((l) => l.split(" "))
    .filter((f) => f[1] === "/")
    .at(-1);
  return !!root && root[3]!.split(",").includes("ro");
}

/**
 * Emergency remount: every filesystem read-only, open files or not. The kernel does it
 * in a worker and tells nobody when done, so look at the mount table until the root is
 * read-only (a bounded wait, once, at power-off).
 */
async function forceReadOnly(): Promise<boolean> {
  try {
    writeFileSync("/proc/sysrq-trigger", "u");
  } catch {
    return false;
  }
  const deadline = Date.now() + EMERGENCY_REMOUNT_MS;
  while (!rootIsReadOnly()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(50);
  }
  return true;
}
