/**
 * Starts the host's guest agent as a detached process (own session, stdio to its log
 * file), so it and its containers outlive vmm.
 */
import { closeSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { REPO_ROOT, resolveEntry } from "../../../lib/entry.ts";
import type { ArcboxHome } from "../../../lib/home.ts";
import { openLogFile } from "../../../lib/log.ts";

export function agentLogPath(home: ArcboxHome): string {
  return join(home.log, "guest-agent.log");
}

export function spawnAgent(home: ArcboxHome): Subprocess {
  const entry = resolveEntry("guest-agent", join(REPO_ROOT, "guest", "main.ts"));
  const logFd = openLogFile(agentLogPath(home));
  try {
    const proc = Bun.spawn([process.execPath, "--smol", entry, "--home", home.root], {
      stdio: ["ignore", logFd, logFd],
      env: { ...process.env, ARCBOX_HOME: home.root },
      // Own session: signals to vmm's process group and vmm's death do not reach it.
      detached: true,
    });
    proc.unref();
    return proc;
  } finally {
    closeSync(logFd);
  }
}
