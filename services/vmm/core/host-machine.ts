/**
 * The "host" machine: the guest agent running directly on this Linux host. vmm starts
 * it detached (its own session, not our child in any way that matters) so it and its
 * containers survive vmm and supervisor restarts; a new vmm reconnects to the running
 * agent instead of starting another.
 */
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import type { ArcboxHome } from "../../../lib/home.ts";
import type { Logger } from "../../../lib/log.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { AGENT_SOCKET_NAME } from "../../../guest/protocol/messages.ts";
import { agentLogPath, spawnAgent } from "../platform/agent-process.ts";
import { AgentClient } from "./agent-client.ts";
import { MachineError } from "./machine-error.ts";

const AGENT_START_TIMEOUT_MS = 20_000;
const CONNECT_RETRY_MS = 20;
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

  /** The connection to the agent, starting the agent when none is running. */
  agent(): Promise<AgentClient> {
    if (this.client?.isOpen) return Promise.resolve(this.client);
    this.connecting ??= this.connectOrStart().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  close(): void {
    this.closing = true;
    this.client?.close();
  }

  private async connectOrStart(): Promise<AgentClient> {
    let socket = await dial(this.socketPath).catch(() => undefined);
    if (!socket) {
      let agent = this.spawnAgent();
      let spawns = 1;
      const deadline = Date.now() + AGENT_START_TIMEOUT_MS;
      while (!socket) {
        socket = await dial(this.socketPath).catch(() => undefined);
        if (socket) break;
        if (Date.now() > deadline) {
          agent.kill();
          throw new MachineError("unavailable", `the guest agent did not come up within ${AGENT_START_TIMEOUT_MS / 1000}s (see ${agentLogPath(this.home)})`);
        }
        // It exited without serving (it deferred to an agent that was itself going away): again.
        if (agent.exitCode !== null && spawns < MAX_SPAWNS) {
          agent = this.spawnAgent();
          spawns++;
        }
        await Bun.sleep(CONNECT_RETRY_MS);
      }
    }
    const client = new AgentClient(socket, this.onEvent, () => {
      if (this.client === client) this.client = undefined;
      if (this.closing) return;
      // The agent died: bring it back now, so event streams resume without waiting for a call.
      this.log.warn("guest agent connection lost; reconnecting");
      this.agent().catch((err) => this.log.error("cannot reconnect to the guest agent", { error: err }));
    });
    this.client = client;
    this.log.info("connected to the guest agent", { socket: this.socketPath });
    return client;
  }

  private spawnAgent() {
    const proc = spawnAgent(this.home);
    this.log.info("started the guest agent", { pid: proc.pid });
    return proc;
  }
}
