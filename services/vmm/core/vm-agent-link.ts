/**
 * vmm's link to the guest agent inside a VM: the agent protocol over the Unix socket
 * qemu serves for the agent's virtio-serial port. A session starts with SYNC both ways
 * (guest/README.md, "Sessions over virtio-serial"): vmm writes it on connect and drops
 * what it reads before the guest's SYNC, so bytes of an older session never reach the
 * frame decoder. The guest's SYNC means the agent is up: no polling while it boots.
 */
import { connect, type Socket } from "node:net";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { SYNC, SyncScanner } from "../../../guest/protocol/sync.ts";
import { AgentClient } from "./agent-client.ts";
import { MachineError } from "./machine-error.ts";

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => {
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", (err) => reject(new MachineError("unavailable", `cannot connect to the agent port at ${path}: ${err.message}`)));
  });
}

export interface AgentLinkOptions {
  socket: string;
  /** How long to wait for the guest's SYNC in all. */
  timeoutMs: number;
  /**
   * With the agent known to be up (adopting a running VM): reconnect when no SYNC came
   * within this long. The guest misses a host's close when the next host connects at
   * once; a fresh connection after a pause lets it see the close (guest/README.md).
   */
  resyncAfterMs?: number;
  onEvent: (e: RuntimeEvent) => void;
  onClose: () => void;
  /** Resolves when waiting is pointless (the VM exited). */
  abandon?: Promise<unknown>;
}

const RESYNC_PAUSE_MS = 500;

/**
 * Connects to the agent's port and waits until the guest's SYNC (or `timeoutMs`).
 * `onClose` runs when the link drops later.
 */
export async function connectVmAgent(opts: AgentLinkOptions): Promise<AgentClient> {
  const deadline = Date.now() + opts.timeoutMs;
  let gone = false;
  void opts.abandon?.then(() => (gone = true));
  for (;;) {
    const left = deadline - Date.now();
    const attemptMs = Math.min(left, opts.resyncAfterMs ?? left);
    try {
      return await attempt(opts, attemptMs, left <= attemptMs);
    } catch (err) {
      if (gone || Date.now() + RESYNC_PAUSE_MS >= deadline) throw err;
    }
    await Bun.sleep(RESYNC_PAUSE_MS);
  }
}

class SyncTimeout extends MachineError {}

async function attempt(opts: AgentLinkOptions, timeoutMs: number, last: boolean): Promise<AgentClient> {
  const socket = await dial(opts.socket);
  let ready = false;
  const scanner = new SyncScanner();
  let synced!: () => void;
  let lost!: (err: Error) => void;
  const sync = new Promise<void>((resolve, reject) => {
    synced = resolve;
    lost = reject;
  });
  const client = new AgentClient(
    socket,
    opts.onEvent,
    () => {
      if (ready) opts.onClose();
      else lost(new MachineError("unavailable", "the agent port closed before the guest agent answered"));
    },
    (chunk) => {
      if (scanner.synced) return chunk;
      const rest = scanner.push(chunk);
      if (rest !== undefined) synced();
      return rest;
    },
  );
  // Nothing but SYNC until the guest's SYNC is read (guest/README.md, rule 1).
  socket.write(SYNC);
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(last ? new MachineError("unavailable", `the guest agent did not answer within ${Math.round(opts.timeoutMs / 1000)}s`) : new SyncTimeout("unavailable", "no SYNC yet")),
      timeoutMs,
    );
  });
  const abandoned = opts.abandon?.then(() => {
    throw new MachineError("unavailable", "the VM exited before its guest agent answered");
  });
  try {
    await Promise.race([sync, timeout, ...(abandoned ? [abandoned] : [])]);
    ready = true;
    return client;
  } catch (err) {
    client.close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
