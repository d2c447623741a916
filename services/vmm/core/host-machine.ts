/**
 * The "host" machine: the guest agent running directly on this Linux host. vmm starts
 * it detached (its own session, not our child in any way that matters) so it and its
 * containers survive vmm and supervisor restarts; a new vmm reconnects to the running
 * agent instead of starting another.
 *
 * The session runs over the agent's FIFO pair (lib/ipc/fifo-stream.ts), not its
 * socket: a socket connection held open wakes both processes every second. Our reader
 * end is opened first; opening the agent's input for writing then fails (ENXIO) when
 * no agent reads it, which is when one is started. Each session begins with SYNC both
 * ways, so bytes a dead vmm left in a FIFO never reach the frame decoder. An agent from
 * before FIFO sessions is still reached through its socket.
 */
import { closeSync, constants } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { ensureFifo, FdStream, openReader, openWaiting, openWriterIfRead, unblockWriterOpen, type ByteStream } from "../../../lib/ipc/fifo-stream.ts";
import type { ArcboxHome } from "../../../lib/home.ts";
import type { Logger } from "../../../lib/log.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { AGENT_FIFO_IN_NAME, AGENT_FIFO_OUT_NAME, AGENT_SOCKET_NAME } from "../../../guest/protocol/messages.ts";
import { SYNC, SyncScanner } from "../../../guest/protocol/sync.ts";
import { agentLogPath, spawnAgent } from "../platform/agent-process.ts";
import { AgentClient } from "./agent-client.ts";
import { MachineError } from "./machine-error.ts";

const AGENT_START_TIMEOUT_MS = 20_000;
const MAX_SPAWNS = 3;

function dial(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => {
      s.removeAllListeners("error");
      resolve(s);
    });
    s.once("error", reject);
  });
}

export class HostMachine {
  readonly id = "host";
  private client: AgentClient | undefined;
  private connecting: Promise<AgentClient> | undefined;
  private closing = false;

  constructor(
    private readonly home: ArcboxHome,
    private readonly log: Logger,
    private readonly onEvent: (e: RuntimeEvent) => void,
  ) {}

  get socketPath(): string {
    return join(this.home.run, AGENT_SOCKET_NAME);
  }

  get state(): string {
    return this.client?.isOpen ? "running" : "stopped";
  }

  /** How vmm's session with the agent runs now: "fifo", "socket" (an older agent) or "none". */
  get link(): string {
    return this.client?.isOpen ? this.via : "none";
  }
  private via = "none";

  /** The connection to the agent, starting the agent when none is running. */
  agent(): Promise<AgentClient> {
    if (this.client?.isOpen) return Promise.resolve(this.client);
    this.connecting ??= this.connectOrStart().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  /**
   * Has the agent write its runtime events to the FIFO at `fifo` itself (apid's), so
   * they flow while vmm is gone. False for an agent from before that: vmm relays its
   * events then.
   */
  async subscribeEvents(fifo: string): Promise<boolean> {
    const agent = await this.agent();
    try {
      await agent.call("events", { machine: this.id, fifo });
      return true;
    } catch (err) {
      if (err instanceof MachineError && err.code === "not_implemented") return false;
      throw err;
    }
  }

  /** Ends the agent's subscription of `fifo`, if an agent is connected (none is started for it). */
  async unsubscribeEvents(fifo: string): Promise<void> {
    if (!this.client?.isOpen) return;
    await this.client.call("events", { machine: this.id, fifo, unsubscribe: true }).catch(() => {});
  }

  close(): void {
    this.closing = true;
    this.client?.close();
  }

  private async connectOrStart(): Promise<AgentClient> {
    const inPath = join(this.home.run, AGENT_FIFO_IN_NAME);
    const outPath = join(this.home.run, AGENT_FIFO_OUT_NAME);
    ensureFifo(inPath);
    ensureFifo(outPath);
    // Our reader first: the agent opens its writer only while someone reads.
    const outFd = openReader(outPath);
    let stream: ByteStream;
    let synced = true;
    try {
      const inFd = openWriterIfRead(inPath);
      const legacy = inFd === undefined ? await dial(this.socketPath).catch(() => undefined) : undefined;
      if (legacy) {
        closeSync(outFd);
        stream = legacy;
      } else {
        stream = new FdStream(outFd, inFd ?? (await this.startAgent(inPath)));
        synced = false;
      }
    } catch (err) {
      try {
        closeSync(outFd);
      } catch {}
      throw err;
    }
    const scanner = new SyncScanner();
    let ready!: () => void;
    let lost!: (err: Error) => void;
    const answered = new Promise<void>((resolve, reject) => ((ready = resolve), (lost = reject)));
    const client: AgentClient = new AgentClient(
      stream,
      this.onEvent,
      () => {
        if (!synced) return lost(new MachineError("unavailable", "the guest agent closed the session before it answered"));
        if (this.client === client) this.client = undefined;
        if (this.closing) return;
        // The agent died: bring it back now, so event streams resume without waiting for a call.
        this.log.warn("guest agent connection lost; reconnecting");
        this.agent().catch((err) => this.log.error("cannot reconnect to the guest agent", { error: err }));
      },
      (chunk) => {
        if (scanner.synced) return chunk;
        const rest = scanner.push(chunk);
        if (rest !== undefined) (synced = true), ready();
        return rest;
      },
    );
    if (!synced) {
      // Nothing but SYNC until the agent's SYNC is read (guest/README.md).
      stream.write(SYNC);
      let timer: Timer | undefined;
      try {
        await Promise.race([
          answered,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new MachineError("unavailable", `the guest agent did not answer within ${AGENT_START_TIMEOUT_MS / 1000}s (see ${agentLogPath(this.home)})`)),
              AGENT_START_TIMEOUT_MS,
            );
          }),
        ]);
      } catch (err) {
        synced = true; // its close is ours now, not a lost link
        client.close();
        throw err;
      } finally {
        clearTimeout(timer);
      }
    } else ready();
    this.client = client;
    this.via = stream instanceof FdStream ? "fifo" : "socket";
    this.log.info("connected to the guest agent", { via: this.via });
    return client;
  }

  /**
   * Starts an agent and resolves with our writer on its input FIFO once it reads it
   * (the open waits in the thread pool). An agent that exits without serving (it
   * deferred to one that was going away) is started again, up to MAX_SPAWNS times.
   */
  private async startAgent(inPath: string): Promise<number> {
    let agent = this.spawnAgent();
    let spawns = 1;
    let settled = false;
    const watch = (proc: typeof agent) =>
      void proc.exited.then(() => {
        if (settled || proc !== agent || spawns >= MAX_SPAWNS) return;
        agent = this.spawnAgent();
        spawns++;
        watch(agent);
      });
    watch(agent);
    const opened = openWaiting(inPath, constants.O_WRONLY);
    let timer: Timer | undefined;
    const timedOut = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), AGENT_START_TIMEOUT_MS)));
    const fd = await Promise.race([opened, timedOut]);
    settled = true;
    clearTimeout(timer);
    if (fd === undefined) {
      agent.kill();
      // Release our own open, which nobody will answer now, and drop what it returns.
      unblockWriterOpen(inPath);
      void opened.then((late) => closeSync(late)).catch(() => {});
      throw new MachineError("unavailable", `the guest agent did not come up within ${AGENT_START_TIMEOUT_MS / 1000}s (see ${agentLogPath(this.home)})`);
    }
    // A non-blocking writer (FileSink applies backpressure with it); the agent reads now.
    try {
      const nonBlocking = openWriterIfRead(inPath);
      if (nonBlocking === undefined) throw new MachineError("unavailable", "the guest agent went away as it started");
      return nonBlocking;
    } finally {
      closeSync(fd);
    }
  }

  private spawnAgent() {
    const proc = spawnAgent(this.home);
    this.log.info("started the guest agent", { pid: proc.pid });
    return proc;
  }
}
