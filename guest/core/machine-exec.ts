/**
 * Machine execs: processes in the machine itself, not in a container (`arcbox machine
 * exec`). Each runs under a shim in "run" mode (native/shim: the pty, stdin half-close,
 * reaping and the exit status, as for container execs), and the agent bridges the shim's
 * stdio socket to "io" frames on the agent stream: fd 0 in, fd 1/2 out (a TTY has only
 * fd 1). The exit becomes a machine_exec_exit event, sent after the last output frame.
 */
import { mkdirSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import type { Logger } from "../../lib/log.ts";
import type { MachineExecRequest } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { startShim } from "../platform/shim.ts";
import { readExit } from "../storage/records.ts";
import { grantableCaps } from "./capabilities.ts";
import { capabilityMask } from "./exec-spec.ts";
import { normalizeSignal } from "./container-runtime.ts";
import type { EventHub } from "./event-hub.ts";
import { GuestError, checkId } from "./guest-error.ts";
import type { AgentLayout } from "./layout.ts";
import type { IoFrame } from "../protocol/messages.ts";

export const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/arcbox/bin";

interface RunningExec {
  id: string;
  dir: string;
  pid: number;
  tty: boolean;
  stdin: boolean;
  socket: Socket;
  outputDone: boolean;
  exitCode?: number;
}

/** The exec spec of native/shim/exec-direct.c for a process in the machine: pid 0, root, the agent's capabilities. */
export function encodeMachineExecSpec(req: MachineExecRequest): Buffer {
  const env = [...req.env];
  if (!env.some((e) => e.startsWith("PATH="))) env.unshift(DEFAULT_PATH);
  if (req.tty && !env.some((e) => e.startsWith("TERM="))) env.push("TERM=xterm");
  if (!env.some((e) => e.startsWith("HOME="))) env.push("HOME=/root");
  const pairs: [string, string][] = [
    ["pid", "0"],
    ["uid", "0"],
    ["gid", "0"],
    ["cwd", req.cwd || "/"],
    // What the agent holds itself (a sandboxed host may lack some): nothing is dropped.
    ["caps", capabilityMask(grantableCaps()).toString(16)],
    ["nnp", "0"],
    ...(req.rows && req.cols
      ? ([
          ["rows", String(req.rows)],
          ["cols", String(req.cols)],
        ] as [string, string][])
      : []),
    ...env.map((e): [string, string] => ["env", e]),
    ...req.args.map((a): [string, string] => ["arg", a]),
  ];
  return Buffer.from(pairs.map(([k, v]) => `${k}\0${v}\0`).join(""));
}

export class MachineExecRuntime {
  private execs = new Map<string, RunningExec>();
  private outputListeners = new Set<(f: IoFrame) => void>();

  constructor(
    private readonly layout: AgentLayout,
    private readonly events: EventHub,
    private readonly resize: (stateDir: string, rows: number, cols: number) => void,
    private readonly log: Logger,
  ) {}

  /** Output frames (fd 1/2, eof) for the host. */
  onOutput(l: (f: IoFrame) => void): () => void {
    this.outputListeners.add(l);
    return () => this.outputListeners.delete(l);
  }

  get count(): number {
    return this.execs.size;
  }

  async start(req: MachineExecRequest): Promise<{ pid: number }> {
    checkId("exec", req.execId);
    if (req.args.length === 0) throw new GuestError("invalid_argument", "no command specified");
    if (this.execs.has(req.execId)) throw new GuestError("already_exists", `machine exec ${req.execId} already exists`);
    const dir = this.layout.machineExecDir(req.execId);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const specFile = `${dir}/exec.spec`;
    await Bun.write(specFile, encodeMachineExecSpec(req));
    const stdioSocket = this.layout.stdioSocket(req.execId);
    let pid: number;
    try {
      pid = await startShim({
        mode: "run",
        id: req.execId,
        stateDir: dir,
        specFile,
        stdioSocket,
        consoleSocket: this.layout.consoleSocket(req.execId),
        notifySocket: this.layout.notifySocket,
        tty: req.tty,
        stdin: req.stdin,
        stdinOnce: true,
        // Keeps output from before our connection below, so nothing is lost.
        hold: true,
      });
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const socket = connect(stdioSocket);
    const exec: RunningExec = { id: req.execId, dir, pid, tty: req.tty, stdin: req.stdin, socket, outputDone: false };
    this.execs.set(exec.id, exec);
    // A quick process may have exited (and its notification gone unmatched) already.
    const exit = readExit(dir);
    if (exit) exec.exitCode = exit.exitCode;
    this.pipeOutput(exec);
    return { pid };
  }

  /** An io frame from the host: stdin bytes, or its end. */
  input(f: IoFrame): void {
    const e = this.execs.get(f.sid);
    if (!e || f.fd !== 0 || !e.stdin || e.socket.destroyed) return;
    if (f.data?.length) e.socket.write(f.data);
    // Half-close: the shim closes the process's stdin (^D on a TTY), as docker's stdin-once.
    if (f.eof) e.socket.end();
  }

  resizeTty(execId: string, rows: number, cols: number): void {
    const e = this.get(execId);
    if (!e.tty) throw new GuestError("failed_precondition", `machine exec ${execId} has no TTY`);
    this.resize(e.dir, rows, cols);
  }

  signal(execId: string, signal: string): void {
    const e = this.get(execId);
    const s = normalizeSignal(signal);
    try {
      process.kill(e.pid, /^\d+$/.test(s) ? Number(s) : (s as NodeJS.Signals));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") return; // exiting already
      throw new GuestError("invalid_argument", `cannot send ${signal} to machine exec ${execId}: ${(err as Error).message}`);
    }
  }

  /** The shim's "exit run <id>": the status is in <dir>/exit. */
  onExitNotification(execId: string): void {
    const e = this.execs.get(execId);
    if (!e) return;
    e.exitCode = readExit(e.dir)?.exitCode ?? 255;
    this.finishIfDone(e);
  }

  private get(execId: string): RunningExec {
    const e = this.execs.get(execId);
    if (!e) throw new GuestError("not_found", `no such machine exec: ${execId}`);
    return e;
  }

  private emit(f: IoFrame): void {
    for (const l of this.outputListeners) l(f);
  }

  /** The shim's stdio socket -> io frames: raw bytes with a TTY, else Docker's 8-byte multiplexed frames. */
  private pipeOutput(e: RunningExec): void {
    let pending: Buffer | undefined;
    e.socket.on("data", (chunk: Buffer) => {
      if (e.tty) {
        this.emit({ k: "io", sid: e.id, fd: 1, data: chunk });
        return;
      }
      let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      while (buf.length >= 8) {
        const len = buf.readUInt32BE(4);
        if (buf.length < 8 + len) break;
        const fd = buf[0] === 2 ? 2 : 1;
        this.emit({ k: "io", sid: e.id, fd, data: buf.subarray(8, 8 + len) });
        buf = buf.subarray(8 + len);
      }
      pending = buf.length ? buf : undefined;
    });
    e.socket.on("error", (err) => this.log.warn("machine exec stdio", { id: e.id, error: err }));
    e.socket.on("close", () => {
      for (const fd of e.tty ? [1] : [1, 2]) this.emit({ k: "io", sid: e.id, fd, eof: true });
      e.outputDone = true;
      this.finishIfDone(e);
    });
  }

  /** The exit event goes out once the output has (the shim closes the socket after draining it). */
  private finishIfDone(e: RunningExec): void {
    if (!e.outputDone || e.exitCode === undefined) return;
    this.execs.delete(e.id);
    this.events.emit({ type: "machine_exec_exit", containerId: "", execId: e.id, exitCode: e.exitCode });
    rmSync(e.dir, { recursive: true, force: true });
  }
}
