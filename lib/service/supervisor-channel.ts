/**
 * A service's line to its supervisor: one end of a socketpair on the fd named by
 * ARCBOX_SUPERVISOR_FD. The service writes newline-delimited JSON messages ("ready",
 * "idle-exit", "activate"); the supervisor answers activations ("activated") on the
 * same line; end of file means the supervisor is gone.
 *
 * Activation goes here rather than to the supervisor's Connect socket, so an idle
 * supervisor never loads its Connect and protobuf code for its own services' sake.
 *
 * It replaces Bun's IPC channel (`ipc`/`process.send`), which wakes both processes
 * every second for as long as it is open: idle means no timer firing.
 */
import { writeSync } from "node:fs";
import { ArcboxError } from "../errors.ts";

export type SupervisorMessage = { type: "ready" } | { type: "idle-exit" } | { type: "activate"; id: number; name: string };
/** The supervisor's answer to an "activate": the service is ready, or why it is not. */
export type SupervisorReply = { type: "activated"; id: number; error?: string };

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
const pendingActivations = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
let nextActivation = 1;
let reading = false;
let supervisorGone = false;

/** Calls `handler` once the supervisor has gone (its end of the socket closed). */
export function onSupervisorExit(handler: () => void): void {
  if (!underSupervisor) return;
  exitHandlers.push(handler);
  readReplies();
}

/**
 * Asks the supervisor to start lazy service `name`; resolves once it is ready. Only
 * under a supervisor (`underSupervisor`); others ask its Connect socket.
 */
export function activateViaSupervisor(name: string): Promise<void> {
  if (supervisorGone) return Promise.reject(new ArcboxError("unavailable", `cannot start ${name}: the supervisor is gone`));
  readReplies();
  const id = nextActivation++;
  return new Promise<void>((resolve, reject) => {
    pendingActivations.set(id, { resolve, reject });
    sendToSupervisor({ type: "activate", id, name });
  });
}

function onReply(line: string): void {
  let reply: SupervisorReply;
  try {
    reply = JSON.parse(line) as SupervisorReply;
  } catch {
    return; // not a message: ignore the line
  }
  const waiter = reply?.type === "activated" ? pendingActivations.get(reply.id) : undefined;
  if (!waiter) return;
  pendingActivations.delete(reply.id);
  if (reply.error === undefined) waiter.resolve();
  else waiter.reject(new ArcboxError("unavailable", String(reply.error)));
}

/** One reader for the process's lifetime: answers to activations, then EOF. */
function readReplies(): void {
  if (reading) return;
  reading = true;
  void (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of Bun.file(fd).stream()) {
        buf += decoder.decode(chunk, { stream: true });
        for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
          onReply(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
      }
    } catch {}
    supervisorGone = true;
    for (const w of pendingActivations.values()) w.reject(new ArcboxError("unavailable", "the supervisor is gone"));
    pendingActivations.clear();
    for (const h of exitHandlers) h();
  })();
}
