/**
 * Powering the machine off from inside (the agent's Poweroff): flush and remount the
 * root read-only, then reboot(2) through busybox. Power-off goes through ACPI; should
 * that not end the VM, a reboot does (the kernel runs with reboot=t, a triple fault,
 * which ends qemu under -no-reboot).
 */
import type { Logger } from "../../lib/log.ts";
import { runTool, toolPath } from "./run-tool.ts";

const FALLBACK_AFTER_MS = 3_000;

export async function powerOffMachine(log: Logger): Promise<void> {
  log.info("powering off");
  await runTool([toolPath("sync")]);
  // Best effort: files still open for writing (logs) make it EBUSY; sync has flushed them.
  const ro = await runTool([toolPath("mount"), "-o", "remount,ro", "/"]);
  if (ro.code !== 0) log.warn("root stays read-write for power-off", { error: ro.stderr.trim() });
  await runTool([toolPath("poweroff"), "-f"]);
  setTimeout(() => void runTool([toolPath("reboot"), "-f"]), FALLBACK_AFTER_MS);
}
