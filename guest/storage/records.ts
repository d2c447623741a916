/**
 * The agent's on-disk state, one directory per container (meta.json, bundle/, the
 * shim's pid/exit/ctl files, execs/<id>/). A restarted agent rebuilds its view from it.
 * Schema version 1: meta.json = ContainerRecord, execs/<id>/meta.json = ExecRecord.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentLayout } from "../core/layout.ts";

export interface ContainerRecord {
  v: 1;
  id: string;
  createdAtUnixNano: string;
  startedAtUnixNano?: string;
  pid: number;
  paused: boolean;
  tty: boolean;
  stdioSocket: string;
  cgroupPath: string;
  /** The init process as configured (env, user, caps), the base of every exec. */
  env: string[];
  user: string;
  capAdd: string[];
  capDrop: string[];
  privileged: boolean;
}

export interface ExecRecord {
  v: 1;
  id: string;
  containerId: string;
  /** ProcessSpec, protobuf binary in base64. */
  process: string;
  pid?: number;
  startedAtUnixNano?: string;
}

export interface ExitStatus {
  exitCode: number;
  finishedAtUnixNano: bigint;
  oomKilled: boolean;
}

/** Wall-clock time in ns, floored to the ms (never ahead of the shim's CLOCK_REALTIME stamps). */
export const nowUnixNano = (): bigint => BigInt(Date.now()) * 1_000_000n;

function writeJsonAtomic(path: string, value: unknown): void {
  writeFileSync(`${path}.tmp`, JSON.stringify(value));
  renameSync(`${path}.tmp`, path);
}

/** The exit file the shim writes (atomically) when the process is gone. */
export function readExit(dir: string): ExitStatus | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, "exit"), "utf8");
  } catch {
    return undefined;
  }
  const code = /"exitCode":(-?\d+)/.exec(text);
  const at = /"finishedAtUnixNano":(\d+)/.exec(text);
  return { exitCode: Number(code?.[1] ?? 255), finishedAtUnixNano: BigInt(at?.[1] ?? 0), oomKilled: text.includes('"oomKilled":true') };
}

/** An exit status as the shim's notification line carries it: "<code> <finishedAtUnixNano> <oom 0|1>". */
export function parseExitFields(fields: string[]): ExitStatus | undefined {
  const [code, at, oom] = fields;
  if (!code || !/^-?\d+$/.test(code) || !at || !/^\d+$/.test(at)) return undefined;
  return { exitCode: Number(code), finishedAtUnixNano: BigInt(at), oomKilled: oom === "1" };
}

export class RecordStore {
  readonly containers = new Map<string, ContainerRecord>();
  readonly execs = new Map<string, ExecRecord>();
  /**
   * Exit statuses a shim could not write (full disk), by state dir: kept here and
   * written as soon as the disk takes them. While one is here, the agent stays.
   */
  private readonly unsavedExits = new Map<string, ExitStatus>();

  constructor(private readonly layout: AgentLayout) {
    mkdirSync(layout.containersDir, { recursive: true, mode: 0o700 });
  }

  load(): void {
    for (const id of readdirSync(this.layout.containersDir)) {
      const dir = this.layout.containerDir(id);
      try {
        this.containers.set(id, JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as ContainerRecord);
      } catch {
        continue; // a create that never finished; removed by the cleanup of that create
      }
      const execsDir = join(dir, "execs");
      if (!existsSync(execsDir)) continue;
      for (const execId of readdirSync(execsDir)) {
        try {
          this.execs.set(execId, JSON.parse(readFileSync(join(execsDir, execId, "meta.json"), "utf8")) as ExecRecord);
        } catch {}
      }
    }
  }

  saveContainer(r: ContainerRecord): void {
    writeJsonAtomic(join(this.layout.containerDir(r.id), "meta.json"), r);
    this.containers.set(r.id, r);
  }

  saveExec(r: ExecRecord): void {
    const dir = this.layout.execDir(r.containerId, r.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeJsonAtomic(join(dir, "meta.json"), r);
    this.execs.set(r.id, r);
  }

  forgetContainer(id: string): void {
    this.containers.delete(id);
    const dir = this.layout.containerDir(id);
    for (const d of this.unsavedExits.keys()) if (d === dir || d.startsWith(`${dir}/`)) this.unsavedExits.delete(d);
    for (const [execId, e] of this.execs) if (e.containerId === id) this.execs.delete(execId);
  }

  containerExit(id: string): ExitStatus | undefined {
    return this.exitOf(this.layout.containerDir(id));
  }

  execExit(e: ExecRecord): ExitStatus | undefined {
    return this.exitOf(this.layout.execDir(e.containerId, e.id));
  }

  /** A status from a shim's notification, for a process whose exit file is missing. */
  rememberExit(kind: "create" | "exec", id: string, status: ExitStatus): void {
    const e = kind === "exec" ? this.execs.get(id) : undefined;
    const dir = kind === "create" ? this.layout.containerDir(id) : e ? this.layout.execDir(e.containerId, e.id) : undefined;
    if (!dir || readExit(dir)) return;
    this.unsavedExits.set(dir, status);
    this.persistExit(dir);
  }

  get hasUnsavedExits(): boolean {
    return this.unsavedExits.size > 0;
  }

  private exitOf(dir: string): ExitStatus | undefined {
    const mem = this.unsavedExits.get(dir);
    if (!mem) return readExit(dir);
    this.persistExit(dir);
    return mem;
  }

  private persistExit(dir: string): void {
    const s = this.unsavedExits.get(dir);
    if (!s) return;
    try {
      // By hand, not JSON.stringify: the nanoseconds do not fit a double.
      writeFileSync(join(dir, "exit.tmp"), `{"exitCode":${s.exitCode},"finishedAtUnixNano":${s.finishedAtUnixNano},"oomKilled":${s.oomKilled}}\n`);
      renameSync(join(dir, "exit.tmp"), join(dir, "exit"));
      this.unsavedExits.delete(dir);
    } catch (err) {
      // Still no space (or the directory is gone with its container): keep it in memory.
      if ((err as { code?: string }).code === "ENOENT") this.unsavedExits.delete(dir);
    }
  }

  status(r: ContainerRecord): "created" | "running" | "paused" | "stopped" {
    if (this.containerExit(r.id)) return "stopped";
    if (!r.startedAtUnixNano) return "created";
    return r.paused ? "paused" : "running";
  }
}
