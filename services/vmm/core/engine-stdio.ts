/**
 * VM mode: the stdio sockets of containers and execs inside the engine machine, served
 * on the host where apid expects them. For each socket the agent reports (a guest path
 * under its io dir) vmm listens on `run/io/<same name>` on the host; every connection
 * apid makes there becomes a socket stream to the guest socket over the agent link
 * (an "open" frame, then io frames: guest/server/socket-streams.ts), half-closes
 * included, so the shim's attach protocol (guest/README.md, "stdio sockets") is
 * unchanged end to end. Bytes are copied, never parsed.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { basename, join } from "node:path";
import type { Logger } from "../../../lib/log.ts";
import type { AgentClient, IoFrame } from "./agent-client.ts";

/** An exec socket nobody connected to is dropped this long after the exec exited. */
const EXEC_LINGER_MS = 60_000;

interface Listener {
  id: string;
  guestPath: string;
  hostPath: string;
  server: Server;
  /** Connections open now, and whether any came. */
  open: number;
  served?: boolean;
  /** The container of an exec's socket (closed with it). */
  owner?: string;
  /** An exec that has exited: the socket goes once its client is done. */
  exited?: boolean;
  timer?: Timer;
}

interface Stream {
  client: Socket;
  agent: AgentClient;
}

export class EngineStdio {
  private readonly listeners = new Map<string, Listener>();
  private readonly streams = new Map<string, Stream>();
  private readonly dir: string;

  constructor(
    runDir: string,
    private readonly agent: () => Promise<AgentClient>,
    private readonly log: Logger,
  ) {
    this.dir = join(runDir, "io");
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Serves the guest socket `guestPath` (of container or exec `id`) on the host; returns the host path. */
  async expose(id: string, guestPath: string, owner?: string): Promise<string> {
    if (!guestPath) return "";
    const existing = this.listeners.get(id);
    if (existing?.guestPath === guestPath) return existing.hostPath;
    if (existing) this.close(id);
    const hostPath = join(this.dir, basename(guestPath));
    rmSync(hostPath, { force: true });
    const l: Listener = { id, guestPath, hostPath, owner, server: createServer({ allowHalfOpen: true }, (c) => void this.onClient(l, c)), open: 0 };
    this.listeners.set(id, l);
    await new Promise<void>((resolve, reject) => {
      l.server.once("error", reject);
      l.server.listen(hostPath, () => resolve());
    });
    return hostPath;
  }

  /** Stops serving the socket of `id` (container deleted: its execs' too). Open streams run to their end. */
  close(id: string): void {
    for (const [execId, e] of this.listeners) if (e.owner === id) this.close(execId);
    const l = this.listeners.get(id);
    if (!l) return;
    this.listeners.delete(id);
    clearTimeout(l.timer);
    l.server.close();
    rmSync(l.hostPath, { force: true });
  }

  /** An exec exited: its socket stays until its first client has come and gone (the shim replays output to it). */
  execExited(id: string): void {
    const l = this.listeners.get(id);
    if (!l) return;
    l.exited = true;
    if (l.open > 0) return; // closed when its client is done
    // Its client came and went already: done. Else it may still come (the shim replays).
    if (l.served) this.close(id);
    else l.timer = setTimeout(() => this.close(id), EXEC_LINGER_MS);
  }

  /** Frames of streams from the agent. */
  onIo(f: IoFrame): boolean {
    const s = this.streams.get(f.sid);
    if (!s) return false;
    if (f.close) {
      this.streams.delete(f.sid);
      s.client.end();
    } else if (f.eof) s.client.end();
    else if (f.data) s.client.write(f.data);
    return true;
  }

  /** The agent link dropped: its streams end. */
  agentGone(agent: AgentClient): void {
    for (const [sid, s] of this.streams) {
      if (s.agent !== agent) continue;
      this.streams.delete(sid);
      s.client.destroy();
    }
  }

  private async onClient(l: Listener, client: Socket): Promise<void> {
    client.on("error", () => {});
    let agent: AgentClient;
    try {
      agent = await this.agent();
    } catch (err) {
      this.log.warn("stdio stream: the engine machine's agent is not reachable", { error: err });
      client.destroy();
      return;
    }
    const sid = `io-${randomBytes(8).toString("hex")}`;
    this.streams.set(sid, { client, agent });
    l.open++;
    l.served = true;
    clearTimeout(l.timer);
    agent.openStream(sid, l.guestPath);
    client.on("data", (data: Buffer) => agent.sendIo(sid, data));
    client.on("end", () => agent.sendIo(sid, "eof"));
    client.on("close", () => {
      if (this.streams.get(sid)?.client === client) {
        this.streams.delete(sid);
        agent.closeStream(sid);
      }
      l.open--;
      // An exited exec's socket has served its purpose once its client is done.
      if (l.exited && l.open === 0 && this.listeners.get(l.id) === l) this.close(l.id);
    });
  }
}
