/**
 * Processes run in VM machines (`arcbox machine exec`), host side. Each exec gets a Unix
 * socket under run/mexec/ that vmm serves for it alone: when the client connects, the
 * agent starts the process (so no output is lost) and bytes move between the socket
 * and the agent's "io" frames: raw with a TTY, Docker's 8-byte multiplexed frames
 * without; the client's half-close is stdin EOF. The agent's machine_exec_exit event
 * ends it; WaitExec answers with the exit code.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { join } from "node:path";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { QUICK_CALL_TIMEOUT_MS, type AgentClient, type IoFrame } from "./agent-client.ts";
import { MachineError } from "./machine-error.ts";

/** An exec whose client never connects is dropped after this long. */
const CONNECT_TIMEOUT_MS = 60_000;
/** Exit code reported when the machine stops under a running exec (as for SIGKILL). */
const MACHINE_GONE_EXIT = 137;
/** Exit code reported for an exec whose agent session was lost. */
const AGENT_LOST_EXIT = 255;

export interface ExecRequest {
  machine: string;
  args: string[];
  env: string[];
  cwd: string;
  tty: boolean;
  stdin: boolean;
  rows: number;
  cols: number;
}

interface Exec {
  id: string;
  req: ExecRequest;
  socketPath: string;
  server: Server;
  client?: Socket;
  agent?: AgentClient;
  exitCode?: number;
  exited: Promise<number>;
  resolveExit: (code: number) => void;
  timer?: Timer;
}

/** Docker's stream header: [stream, 0, 0, 0, BE32 length]. */
function muxFrame(fd: number, data: Uint8Array): Buffer {
  const header = Buffer.alloc(8);
  header[0] = fd;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

export class MachineExecs {
  private readonly execs = new Map<string, Exec>();
  private readonly dir: string;

  constructor(
    runDir: string,
    private readonly agentOf: (machine: string) => AgentClient,
  ) {
    this.dir = join(runDir, "mexec");
    // Sockets of an earlier vmm serve nobody now.
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  async create(req: ExecRequest): Promise<{ id: string; socket: string }> {
    if (req.args.length === 0) throw new MachineError("invalid_argument", "exec needs a command");
    this.agentOf(req.machine); // fails now, with the machine's state, if it is not running
    const id = randomBytes(16).toString("hex");
    const socketPath = join(this.dir, `${id}.sock`);
    let resolveExit!: (code: number) => void;
    const exited = new Promise<number>((r) => (resolveExit = r));
    const server = createServer({ allowHalfOpen: true }, (s) => void this.onClient(exec, s));
    const exec: Exec = { id, req, socketPath, server, exited, resolveExit };
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(socketPath, () => resolve());
    });
    exec.timer = setTimeout(() => {
      if (!exec.client) this.finish(exec, -1);
    }, CONNECT_TIMEOUT_MS);
    this.execs.set(id, exec);
    return { id, socket: socketPath };
  }

  async resize(id: string, rows: number, cols: number): Promise<void> {
    const e = this.get(id);
    if (!e.agent || e.exitCode !== undefined) return;
    await e.agent.call("machineExecResize", { machine: e.req.machine, execId: id, rows, cols }, { timeoutMs: QUICK_CALL_TIMEOUT_MS });
  }

  async wait(id: string, signal?: AbortSignal): Promise<number> {
    const e = this.get(id);
    const code = await (signal ? Promise.race([e.exited, new Promise<never>((_, rej) => signal.addEventListener("abort", () => rej(new MachineError("canceled", "wait canceled"))))]) : e.exited);
    this.execs.delete(id);
    return code;
  }

  /** Agent events: an exec's exit. */
  onEvent(e: RuntimeEvent): void {
    if (e.type !== "machine_exec_exit") return;
    const exec = this.execs.get(e.execId);
    if (exec) this.finish(exec, e.exitCode);
  }

  /** Agent io frames: output of an exec. */
  onIo(f: IoFrame): void {
    const exec = this.execs.get(f.sid);
    const c = exec?.client;
    if (!exec || !c || c.destroyed) return;
    if (f.eof || !f.data) return; // the exit event ends the stream (after every output frame)
    c.write(exec.req.tty ? f.data : muxFrame(f.fd, f.data));
  }

  /**
   * The agent session of a machine was dropped: started execs can no longer deliver
   * output or their exit (the processes may live on in the guest). They end with 255.
   */
  agentLost(machine: string): void {
    for (const e of this.execs.values()) {
      if (e.req.machine !== machine || e.exitCode !== undefined || !e.agent) continue;
      const msg = `arcbox: lost the connection to the guest agent of machine ${machine}; this process's output and exit status are lost\n`;
      if (e.client && !e.client.destroyed) e.client.write(e.req.tty ? Buffer.from(msg) : muxFrame(2, Buffer.from(msg)));
      this.finish(e, AGENT_LOST_EXIT);
    }
  }

  /** The machine stopped: its execs end as killed. */
  machineGone(machine: string): void {
    for (const e of this.execs.values()) if (e.req.machine === machine && e.exitCode === undefined) this.finish(e, MACHINE_GONE_EXIT);
  }

  private get(id: string): Exec {
    const e = this.execs.get(id);
    if (!e) throw new MachineError("not_found", `no such exec: ${id}`);
    return e;
  }

  private async onClient(exec: Exec, s: Socket): Promise<void> {
    if (exec.client) {
      s.destroy();
      return;
    }
    exec.client = s;
    clearTimeout(exec.timer);
    // One client per exec: nobody else may connect.
    exec.server.close();
    rmSync(exec.socketPath, { force: true });
    s.on("error", () => {});
    try {
      const agent = this.agentOf(exec.req.machine);
      exec.agent = agent;
      const r = exec.req;
      await agent.call(
        "machineExec",
        { machine: r.machine, execId: exec.id, args: r.args, env: r.env, cwd: r.cwd, tty: r.tty, rows: r.rows, cols: r.cols, stdin: r.stdin },
        { timeoutMs: QUICK_CALL_TIMEOUT_MS },
      );
      s.on("data", (d: Buffer) => agent.sendIo(exec.id, d));
      s.on("end", () => agent.sendIo(exec.id, "eof"));
      if (!r.stdin) agent.sendIo(exec.id, "eof");
    } catch (err) {
      const msg = `arcbox: cannot run ${JSON.stringify(exec.req.args[0])} in machine ${exec.req.machine}: ${(err as Error).message}\n`;
      s.write(exec.req.tty ? Buffer.from(msg) : muxFrame(2, Buffer.from(msg)));
      this.finish(exec, 126);
    }
  }

  private finish(exec: Exec, code: number): void {
    if (exec.exitCode !== undefined) return;
    exec.exitCode = code;
    clearTimeout(exec.timer);
    if (!exec.client) {
      exec.server.close();
      rmSync(exec.socketPath, { force: true });
    }
    const c = exec.client;
    if (c && !c.destroyed) {
      // Half-close, then drop what the client still sends until it closes: closing with
      // unread input would reset the connection and lose output it had not read.
      c.removeAllListeners("data");
      c.on("data", () => {});
      c.end();
    }
    exec.resolveExit(code);
    if (code === -1) this.execs.delete(exec.id);
  }
}
