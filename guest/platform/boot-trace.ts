/**
 * Boot trace marks inside a VM: stage 2 sets ARCBOX_BOOT_TRACE_FILE and the agent
 * appends "<uptime seconds> <phase>" lines to it (guest/README.md, "Boot trace"). A no-op
 * elsewhere.
 */
import { appendFileSync, readFileSync } from "node:fs";

const file = process.env.ARCBOX_BOOT_TRACE_FILE;

export function bootMark(phase: string): void {
  if (!file) return;
  try {
    const up = readFileSync("/proc/uptime", "utf8").split(" ")[0];
    appendFileSync(file, `${up} ${phase}\n`);
  } catch {
    // A trace is never worth failing the boot for.
  }
}
