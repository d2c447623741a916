/**
 * VM mode: container-files operations (docker cp, export, diff, commit) run where the
 * files are, in the engine machine's agent (guest/core/rootfs-files.ts), reached by apid
 * through one Unix socket vmm serves at `run/engine-files.sock`.
 *
 * A connection is one operation. apid writes a JSON line (the request, with host paths:
 * the image's layer dirs and the container's binds, translated here as for
 * CreateContainer), then the bytes of the helper's stdin (a tar to unpack) and a
 * half-close. vmm answers with Docker's multiplexed frames ([fd, 0, 0, 0, BE32 length]):
 * fd 1 the helper's stdout (an answer line, then a tar), fd 2 its stderr, and last fd 3
 * with the exit status (BE32), so apid reads it exactly as it reads its own helper
 * process (services/apid/core/rootfs-helper.ts). The bytes travel as a "files" stream
 * over the existing agent link (io frames), with pause/resume both ways: a slow reader
 * of a large archive stops the helper in the machine instead of filling memory here.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { z } from "zod";
import type { Logger } from "../../../lib/log.ts";
import type { AgentClient, IoFrame } from "./agent-client.ts";
import type { EnginePaths } from "./engine-paths.ts";

export const ENGINE_FILES_SOCKET = "engine-files.sock";
/** How much may wait for apid before the helper is paused (guest/server/file-streams.ts). */
const FILES_HIGH_WATER = 1 << 20;
/** The agent's output window (guest/server/file-streams.ts FILES_WINDOW). */
const FILES_WINDOW = 4 << 20;
/** A request line longer than this is refused (it holds a few paths). */
const MAX_REQUEST = 1 << 20;

/** The request as apid sends it (host paths); guest/core/rootfs-files.ts checks the rest. */
const HostFilesRequest = z.object({
  op: z.string(),
  id: z.string(),
  path: z.string().default("/"),
  flags: z.array(z.string()).default([]),
  writable: z.boolean().default(false),
  lowerDirs: z.array(z.string()).default([]),
  binds: z.array(z.object({ source: z.string(), destination: z.string(), rw: z.boolean() })).default([]),
});

interface Stream {
  /** apid's connection; none for vmm's own operations (runOp). */
  client?: Socket;
  /** vmm's own operation: called with the exit status. */
  done?: (code: number) => void;
  agent: AgentClient;
  /** The agent was asked to pause the helper's output. */
  outputPaused?: boolean;
  /** Output bytes received from the agent, and handed on to the client's socket. */
  received: number;
  /** The last `ack` sent to the agent (guest/server/file-streams.ts's window). */
  acked: number;
}

function frame(fd: number, data: Uint8Array): Buffer {
  const header = Buffer.alloc(8);
  header[0] = fd;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

export class EngineFiles {
  private readonly streams = new Map<string, Stream>();
  private server: Server | undefined;
  readonly socketPath: string;

  constructor(
    runDir: string,
    private readonly paths: EnginePaths,
    private readonly agent: () => Promise<AgentClient>,
    private readonly log: Logger,
    /** The agent if the machine is up or coming up, without booting it. */
    private readonly agentIfUp: () => Promise<AgentClient | undefined>,
    /** A removal's discard the machine could not take now (it is not running): done at its next boot. */
    private readonly deferDiscard: (id: string) => void,
  ) {
    this.socketPath = join(runDir, ENGINE_FILES_SOCKET);
  }

  async listen(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const server = createServer({ allowHalfOpen: true }, (c) => this.onClient(c));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o600);
  }

  /**
   * Open streams for the debug state: bytes taken from the agent, and bytes still
   * waiting in the client's socket buffer (flow control keeps both bounded).
   */
  stats(): { sid: string; received: number; queued: number; paused: boolean }[] {
    return [...this.streams].map(([sid, s]) => ({ sid, received: s.received, queued: s.client?.writableLength ?? 0, paused: !!s.outputPaused }));
  }

  close(): void {
    this.server?.close();
    rmSync(this.socketPath, { force: true });
  }

  /** Frames of files streams from the agent; false for others. */
  onIo(f: IoFrame): boolean {
    const s = this.streams.get(f.sid);
    if (!s) return false;
    if (f.close) {
      this.streams.delete(f.sid);
      s.done?.(f.code ?? 1);
      const code = Buffer.alloc(4);
      code.writeInt32BE(f.code ?? 1);
      s.client?.end(frame(3, code));
    } else if (!s.client) {
      // vmm's own operation: its output is not needed.
      if (f.data) this.consumed(s, f.sid, f.data.length);
    } else if (f.fd === 0 && f.pause) s.client.pause();
    else if (f.fd === 0 && f.resume) s.client.resume();
    else if (f.data) {
      s.client.write(frame(f.fd, f.data));
      // apid (its client) reads slower than the machine writes: the helper waits.
      if (!s.outputPaused && s.client.writableLength > FILES_HIGH_WATER) {
        s.outputPaused = true;
        s.agent.flow(f.sid, 1, "pause");
        s.client.once("drain", () => {
          s.outputPaused = false;
          if (this.streams.get(f.sid) !== s) return;
          s.agent.flow(f.sid, 1, "resume");
          this.acknowledge(s, f.sid);
        });
      }
      this.consumed(s, f.sid, f.data.length);
    }
    return true;
  }

  /** Counts output taken from the agent; acknowledges it while the client keeps up. */
  private consumed(s: Stream, sid: string, bytes: number): void {
    s.received += bytes;
    if (!s.outputPaused) this.acknowledge(s, sid);
  }

  /** Opens the agent's window again, a quarter of it at a time (not a frame per chunk). */
  private acknowledge(s: Stream, sid: string): void {
    if (s.received - s.acked < FILES_WINDOW / 4) return;
    s.acked = s.received;
    s.agent.ack(sid, s.acked);
  }

  /** The agent link dropped: its operations fail. */
  agentGone(agent: AgentClient): void {
    for (const [sid, s] of this.streams) {
      if (s.agent !== agent) continue;
      this.streams.delete(sid);
      s.client?.destroy();
      s.done?.(255);
    }
  }

  /** An operation of vmm's own (a deferred discard) on `agent`: its exit status. */
  runOp(agent: AgentClient, req: { op: string; id: string }): Promise<number> {
    const sid = `files-${randomBytes(8).toString("hex")}`;
    return new Promise((resolve) => {
      this.streams.set(sid, { agent, done: resolve, received: 0, acked: 0 });
      agent.openFiles(sid, req);
    });
  }

  private onClient(client: Socket): void {
    client.on("error", () => {});
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf(10);
      if (nl < 0) {
        if (head.length > MAX_REQUEST) this.refuse(client, "the files request is too long");
        return;
      }
      client.off("data", onData);
      client.pause();
      void this.start(client, head.subarray(0, nl).toString(), head.subarray(nl + 1));
    };
    client.on("data", onData);
  }

  private refuse(client: Socket, message: string): void {
    const code = Buffer.alloc(4);
    code.writeInt32BE(2);
    client.end(Buffer.concat([frame(2, Buffer.from(message)), frame(3, code)]));
  }

  private async start(client: Socket, line: string, rest: Buffer): Promise<void> {
    let req: z.infer<typeof HostFilesRequest>;
    let guestReq: unknown;
    try {
      req = HostFilesRequest.parse(JSON.parse(line));
      guestReq = {
        ...req,
        lowerDirs: this.paths.lowerDirs(req.lowerDirs),
        binds: req.binds.flatMap((b) => {
          const source = this.paths.bindSource(b.source);
          return source === undefined ? [] : [{ ...b, source }];
        }),
      };
    } catch (err) {
      return this.refuse(client, `bad files request: ${err instanceof Error ? err.message : String(err)}`);
    }
    let agent: AgentClient | undefined;
    try {
      // Measuring and removing never boot the machine: `docker ps -s` or `docker rm` of an
      // exited container needs no VM. A machine that is not running reports 0 bytes (its
      // disk is not readable from here), and a discard waits for its next boot.
      const bootsMachine = req.op !== "size" && req.op !== "discard";
      agent = bootsMachine ? await this.agent() : await this.agentIfUp();
      if (!agent) {
        if (req.op === "discard") this.deferDiscard(req.id);
        const code = Buffer.alloc(4);
        return void client.end(Buffer.concat([...(req.op === "size" ? [frame(1, Buffer.from(JSON.stringify({ sizeRw: 0 })))] : []), frame(3, code)]));
      }
    } catch (err) {
      this.log.warn("files stream: the engine machine's agent is not reachable", { error: err });
      return this.refuse(client, `the engine machine is not reachable: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (client.destroyed) return;
    const sid = `files-${randomBytes(8).toString("hex")}`;
    this.streams.set(sid, { client, agent, received: 0, acked: 0 });
    agent.openFiles(sid, guestReq);
    if (rest.length) agent.sendIo(sid, rest);
    // Once the helper has answered and exited, the rest of an upload goes nowhere.
    const live = () => this.streams.get(sid)?.client === client;
    client.on("data", (data: Buffer) => live() && agent.sendIo(sid, data));
    client.on("end", () => live() && agent.sendIo(sid, "eof"));
    client.on("close", () => {
      // apid went away (a client hung up on a copy): the helper is killed.
      if (this.streams.get(sid)?.client === client) {
        this.streams.delete(sid);
        agent.closeStream(sid);
      }
    });
    client.resume();
  }
}
