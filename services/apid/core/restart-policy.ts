/** Docker's restart policies: whether an exited container comes back, and after how long. */
import type { ContainerRecord } from "./container-record.ts";

/** On a container exit while the daemon runs. */
export function shouldRestartOnExit(rec: ContainerRecord): boolean {
  if (rec.manualStop || rec.hostConfig.AutoRemove) return false;
  const p = rec.hostConfig.RestartPolicy ?? { Name: "no" };
  switch (p.Name) {
    case "always":
    case "unless-stopped":
      return true;
    case "on-failure":
      return rec.state.exitCode !== 0 && (!p.MaximumRetryCount || rec.restartCount < p.MaximumRetryCount);
    default:
      return false;
  }
}

/** When the daemon starts: "always" even after a manual stop, "unless-stopped" only if not stopped by the user. */
export function shouldRestartOnDaemonStart(rec: ContainerRecord): boolean {
  const name = rec.hostConfig.RestartPolicy?.Name;
  return name === "always" || (name === "unless-stopped" && !rec.manualStop);
}

/** Docker's backoff: 100ms doubling per consecutive restart, reset after 10s of good running, capped at 1 minute. */
export function restartDelayMs(consecutive: number): number {
  return Math.min(100 * 2 ** consecutive, 60_000);
}
