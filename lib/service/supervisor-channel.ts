/**
 * A service's line to its supervisor: one end of a socketpair on the fd named by
 * ARCBOX_SUPERVISOR_FD. The service writes newline-delimited JSON messages ("ready",
 * "idle-exit"); end of file means the supervisor is gone.
 *
 * It replaces Bun's IPC channel (`ipc`/`process.send`), which wakes both processes
 * every second for as long as it is open: idle means no timer firing.
 */
import { writeSync } from "node:fs";

export type SupervisorMessage = { type: "ready" } | { type: "idle-exit" };

const fd = Number(process.env.ARCBOX_SUPERVISOR_FD);
// Not for the processes this service spawns (e.g. vmm's guest agent): fd 3 is not theirs.
delete process.env.ARCBOX_SUPERVISOR_FD;
/** Whether this process runs under a supervisor (which restarts it, and can be told things). */
export const underSupervisor = Number.isInteger(fd) && fd >= 3;

export function sendToSupervisor(msg: SupervisorMessage): void {
  if (!underSupervisor) return;
  try {
    writeSync(fd, `${JSON.stringify(msg)}\n`);
  } catch {} // the supervisor is gone: the EOF handlers deal with it
}

const exitHandlers: (() => void)[] = [];
let reading = false;

/** Calls `handler` once the supervisor has gone (its end of the socket closed). */
export function onSupervisorExit(handler: () => void): void {
  if (!underSupervisor) return;
  exitHandlers.push(handler);
  if (reading) return;
  reading = true;
  void (async () => {
    const reader = Bun.file(fd).stream().getReader();
    try {
      while (!(await reader.read()).done); // the supervisor sends nothing; only EOF matters
    } catch {}
    for (const h of exitHandlers) h();
  })();
}
