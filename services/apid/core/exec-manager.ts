/**
 * `docker exec` instances: created in memory (as Docker does, they do not survive a
 * daemon restart), started through vmm.CreateExec + StartExec, finished by the runtime's
 * exec_exit event.
 */
import { z } from "zod";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { call, type Backends } from "./backends.ts";
import { ContainerError, noSuchExec } from "./container-error.ts";
import { parseDetachKeys } from "./detach-keys.ts";
import type { ExecBackend, ExecContainers } from "./container-backends.ts";
import type { ContainerRecord } from "./container-record.ts";
import { HOST_MACHINE, processOptions } from "./runtime-spec.ts";

export const execCreateSchema = z.looseObject({
  AttachStdin: z.boolean().nullish(),
  AttachStdout: z.boolean().nullish(),
  AttachStderr: z.boolean().nullish(),
  DetachKeys: z.string().nullish(),
  ConsoleSize: z.array(z.number().int()).nullish(),
  Tty: z.boolean().nullish(),
  Env: z.array(z.string()).nullish(),
  Cmd: z.array(z.string()).min(1, "No exec command specified"),
  Privileged: z.boolean().nullish(),
  User: z.string().nullish(),
  WorkingDir: z.string().nullish(),
});

/**
 * dockerd decodes request bodies with Go's encoding/json, which matches field names
 * case-insensitively: python3-docker sends `detachKeys` in an exec create body. Keys that
 * match a known field in another case take the field's own name.
 */
function canonicalKeys(raw: unknown): unknown {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return raw;
  const known = new Map(Object.keys(execCreateSchema.shape).map((k) => [k.toLowerCase(), k]));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const name = known.get(k.toLowerCase()) ?? k;
    if (name !== k && name in raw) continue; // the exact name wins over another case
    out[name] = v;
  }
  return out;
}

const MAX_FINISHED_PER_CONTAINER = 128;

export interface ExecRecord {
  id: string;
  /** The exec's ID at the runtime: the Docker ID, unless the spec had to be re-registered. */
  runtimeId: string;
  containerId: string;
  cmd: string[];
  tty: boolean;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  privileged: boolean;
  user: string;
  env: string[];
  workingDir: string;
  consoleSize: [number, number];
  detachKeys: string;
  started: boolean;
  running: boolean;
  exitCode: number | null;
  pid: number;
  exited: Promise<number>;
  resolveExit: (code: number) => void;
  /** vmm.CreateExec, issued at create so it overlaps the client's next request. */
  registered?: Promise<void>;
  /** That CreateExec succeeded (until then, StartExec carries the spec itself). */
  registeredOk?: boolean;
}

/** A runtime id for a spec registered anew: the runtime refuses a second CreateExec for an id. */
const freshRuntimeId = (id: string) => `${id.slice(0, 48)}${Buffer.from(crypto.getRandomValues(new Uint8Array(8))).toString("hex")}`;

export class ExecManager implements ExecBackend {
  private readonly execs = new Map<string, ExecRecord>();

  constructor(
    private readonly containers: ExecContainers,
    private readonly backends: Backends,
  ) {
    containers.onExecExit = (ev) => this.onExit(ev);
    containers.onRemoved = (id) => {
      for (const e of this.execs.values()) if (e.containerId === id) this.execs.delete(e.id);
    };
  }

  create(containerRef: string, raw: unknown): string {
    const parsed = execCreateSchema.safeParse(canonicalKeys(raw ?? {}));
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ContainerError("invalid_argument", issue.path[0] === "Cmd" ? "No exec command specified" : `invalid exec config: ${issue.path.join(".")}: ${issue.message}`);
    }
    const b = parsed.data;
    if (!parseDetachKeys(b.DetachKeys)) throw new ContainerError("invalid_argument", `Invalid escape keys (${b.DetachKeys}) provided`);
    const rec = this.containers.get(containerRef);
    // dockerd's getActiveContainer, with its wording (the paused one names the container as asked).
    if (rec.state.status === "paused") throw new ContainerError("conflict", `Container ${containerRef} is paused, unpause the container before exec`);
    if (rec.state.status !== "running") throw new ContainerError("conflict", `Container ${rec.id} is not running`);
    const id = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
    let resolveExit!: (code: number) => void;
    const exited = new Promise<number>((r) => (resolveExit = r));
    const cs = b.ConsoleSize ?? [0, 0];
    this.execs.set(id, {
      id,
      runtimeId: id,
      containerId: rec.id,
      cmd: b.Cmd,
      tty: !!b.Tty,
      attachStdin: !!b.AttachStdin,
      attachStdout: !!b.AttachStdout,
      attachStderr: !!b.AttachStderr,
      privileged: !!b.Privileged,
      user: b.User ?? "",
      env: b.Env ?? [],
      workingDir: b.WorkingDir ?? "",
      consoleSize: [cs[0] ?? 0, cs[1] ?? 0],
      detachKeys: b.DetachKeys ?? "",
      started: false,
      running: false,
      exitCode: null,
      pid: 0,
      exited,
      resolveExit,
    });
    const e = this.execs.get(id)!;
    e.registered = this.register(e, rec);
    // Failures surface at start (which then carries the spec itself); never as an unhandled rejection here.
    e.registered.then(() => (e.registeredOk = true)).catch(() => {});
    this.containers.emit(rec, `exec_create: ${b.Cmd.join(" ")}`, { execID: id });
    return id;
  }

  get(id: string): ExecRecord {
    const e = this.execs.get(id);
    if (!e) throw noSuchExec(id);
    return e;
  }

  idsOf(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.containerId === containerId).map((e) => e.id);
  }

  /** Starts the process; returns its stdio socket ("" when detached). */
  async start(id: string, opts: { detach: boolean; tty?: boolean; consoleSize?: [number, number] }): Promise<string> {
    const { e, rec } = this.startable(id);
    e.started = true;
    e.running = true;
    const tty = opts.tty ?? e.tty;
    const size = opts.consoleSize ?? e.consoleSize;
    try {
      // The process spec was registered at create. A start that changes TTY or size uses a
      // fresh runtime id (the runtime refuses a second CreateExec) and sends the spec with
      // the start, as does a start that arrives before the CreateExec has completed: the
      // runtime creates the exec then, without a round trip of ours waiting for the other.
      if (tty !== e.tty || size[0] !== e.consoleSize[0] || size[1] !== e.consoleSize[1] || !e.registered) {
        e.tty = tty;
        e.consoleSize = size;
        e.runtimeId = freshRuntimeId(e.id);
        e.registeredOk = false;
      }
      const process = e.registeredOk ? undefined : this.processSpec(e, rec);
      const res = await call(() => this.backends.machines.startExec({ machine: HOST_MACHINE, containerId: rec.id, execId: e.runtimeId, detach: opts.detach, process }));
      e.pid = res.pid;
      this.containers.emit(rec, `exec_start: ${e.cmd.join(" ")}`, { execID: id });
      return res.stdioSocket;
    } catch (err) {
      e.running = false;
      // As moby's ContainerExecStart: any start failure leaves ExitCode 126 (its deferred
      // cleanup overrides the 127 that translateContainerdStartErr sets for a missing binary).
      e.exitCode = 126;
      e.resolveExit(e.exitCode);
      throw err;
    }
  }

  /** The checks a start makes before anything runs (a hijacking route makes them before it upgrades). */
  startable(id: string): { e: ExecRecord; rec: ContainerRecord } {
    const e = this.get(id);
    if (e.started) throw new ContainerError("conflict", `Error: Exec command ${id} has already run`);
    const rec = this.containers.get(e.containerId);
    if (rec.state.status === "paused") throw new ContainerError("conflict", `Container ${rec.id} is paused, unpause the container before exec`);
    if (rec.state.status !== "running") throw new ContainerError("conflict", `Container ${rec.id} is not running`);
    return { e, rec };
  }

  private async register(e: ExecRecord, rec: ContainerRecord): Promise<void> {
    await call(() => this.backends.machines.createExec({ machine: HOST_MACHINE, containerId: rec.id, execId: e.runtimeId, process: this.processSpec(e, rec) }));
  }

  private processSpec(e: ExecRecord, rec: ContainerRecord) {
    const env = [...(rec.config.Env ?? []), ...e.env];
    if (e.tty && !env.some((x: string) => x.startsWith("TERM="))) env.push("TERM=xterm");
    const [h, w] = e.consoleSize;
    return {
      args: e.cmd,
      env,
      cwd: e.workingDir || rec.config.WorkingDir || "/",
      user: e.user || rec.config.User || "",
      tty: e.tty,
      openStdin: e.attachStdin,
      stdinOnce: true,
      privileged: e.privileged,
      capAdd: rec.hostConfig.CapAdd ?? [],
      capDrop: rec.hostConfig.CapDrop ?? [],
      ttyHeight: h,
      ttyWidth: w,
      ...processOptions(rec),
    };
  }

  /** Exit code once known: from the event, or asked of the runtime if the event is late. */
  async settle(e: ExecRecord): Promise<void> {
    if (!e.running) return;
    const state = await call(() => this.backends.machines.execState({ machine: HOST_MACHINE, execId: e.runtimeId })).catch(() => undefined);
    if (state?.exited) this.finish(e, state.exitCode);
  }

  private onExit(ev: RuntimeEvent): void {
    const e = this.execs.get(ev.execId) ?? [...this.execs.values()].find((x) => x.runtimeId === ev.execId);
    if (e && e.runtimeId === ev.execId) this.finish(e, ev.exitCode);
  }

  private finish(e: ExecRecord, code: number): void {
    if (!e.running) return;
    e.running = false;
    e.exitCode = code;
    e.pid = 0;
    e.resolveExit(code);
    this.forgetOldFinished(e.containerId);
    const rec = this.containers.find(e.containerId);
    if (rec) this.containers.emit(rec, "exec_die", { execID: e.id, exitCode: String(code) });
  }

  /** Finished execs stay inspectable, but a container running execs in a loop must not grow memory forever. */
  private forgetOldFinished(containerId: string): void {
    const finished = [...this.execs.values()].filter((x) => x.containerId === containerId && x.started && !x.running);
    for (const old of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_PER_CONTAINER))) this.execs.delete(old.id);
  }

  /** The client detached with its detach keys: the process runs on (Docker's exec_detach event). */
  detached(id: string): void {
    const e = this.execs.get(id);
    const rec = e && this.containers.find(e.containerId);
    if (rec) this.containers.emit(rec, "exec_detach");
  }

  async resize(id: string, height: number, width: number): Promise<void> {
    const e = this.get(id);
    if (!e.running) throw new ContainerError("conflict", `Exec ${id} is not running`);
    await call(() => this.backends.machines.resizeTty({ machine: HOST_MACHINE, id: e.containerId, execId: e.runtimeId, height, width }));
  }

  inspect(id: string) {
    const e = this.get(id);
    return {
      CanRemove: !e.running && e.started,
      ContainerID: e.containerId,
      DetachKeys: e.detachKeys,
      ExitCode: e.exitCode,
      ID: e.id,
      OpenStderr: e.attachStderr,
      OpenStdin: e.attachStdin,
      OpenStdout: e.attachStdout,
      ProcessConfig: { arguments: e.cmd.slice(1), entrypoint: e.cmd[0], privileged: e.privileged, tty: e.tty, user: e.user },
      Running: e.running,
      Pid: e.pid,
    };
  }
}
