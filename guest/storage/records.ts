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

export class RecordStore {
  readonly containers = new Map<string, ContainerRecord>();
  readonly execs = new Map<string, ExecRecord>();

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
    for (const [execId, e] of this.execs) if (e.containerId === id) this.execs.delete(execId);
  }

  containerExit(id: string): ExitStatus | undefined {
    return readExit(this.layout.containerDir(id));
  }

  execExit(e: ExecRecord): ExitStatus | undefined {
    return readExit(this.layout.execDir(e.containerId, e.id));
  }

  status(r: ContainerRecord): "created" | "running" | "paused" | "stopped" {
    if (this.containerExit(r.id)) return "stopped";
    if (!r.startedAtUnixNano) return "created";
    return r.paused ? "paused" : "running";
  }
}
