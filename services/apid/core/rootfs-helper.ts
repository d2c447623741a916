/**
 * Where a container's files are read and written (docker cp, export, diff, commit): the
 * backend behind core/rootfs-cp.ts. Both run native/bin/arcbox-rootfs-cp, which
 * enters the container's root before it touches a path, and give the same view of it
 * (its stdout, stderr and exit status), so everything above is one code path:
 * - host mode: apid spawns the helper on the host;
 * - VM mode: the container's files are in the engine machine; the helper runs there,
 *   started by the guest agent, its bytes carried over the agent link by vmm's
 *   `run/engine-files.sock` (services/vmm/core/engine-files.ts).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { Readable, type Writable } from "node:stream";
import { z } from "zod";
import { dirSize } from "../../../lib/dir-size.ts";
import { REPO_ROOT } from "../../../lib/entry.ts";
import { upperChanges, type Change } from "../../../lib/rootfs-changes.ts";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";
import { ENGINE_IS_VM } from "./engine-target.ts";

const HELPER = join(REPO_ROOT, "native", "bin", "arcbox-rootfs-cp");
/** vmm's socket for files operations in the engine machine (VM mode). */
const ENGINE_FILES_SOCKET = "engine-files.sock";
/** The answer of the files op "size" (guest/core/rootfs-files.ts). */
const FilesSizeAnswer = z.object({ sizeRw: z.number().int().nonnegative() });

export type HelperOp = "stat" | "get" | "put" | "export";

export interface HelperRequest {
  rec: ContainerRecord;
  op: HelperOp;
  /** The cleaned container path (core/rootfs-cp.ts containerPath). */
  path: string;
  flags: string[];
  /** A stopped container's overlay mounted writable (put). */
  writable: boolean;
  /** data/apid/tmp: where the host helper mounts a stopped container's overlay. */
  tmpBase: string;
}

/** A running helper, wherever it runs. */
export interface HelperRun {
  stdout: ReadableStream<Uint8Array>;
  /** Its stdin (put); ended by the caller. */
  stdin: Writable;
  /** Its stderr, once it is done. */
  stderr(): Promise<string>;
  exited: Promise<number>;
  kill(): void;
}

export interface RootfsHelpers {
  run(req: HelperRequest): HelperRun;
  /** docker diff's list. */
  changes(rec: ContainerRecord): Promise<Change[]>;
  /** The container's writable layer as a layer tar (whiteouts), for commit; undefined: imaged reads the host's upper dir. */
  layerTar(rec: ContainerRecord): HelperRun | undefined;
  /** The container is removed: its writable layer goes (VM mode; imaged removes the host's). */
  discard(rec: ContainerRecord): Promise<void>;
  /** Bytes in the container's writable layer (SizeRw), where that layer is. */
  sizeRw(rec: ContainerRecord): Promise<number>;
}

/** Where the host helper finds the container's root: the live one, or the stopped one's layers. */
function hostRootArgs(rec: ContainerRecord, tmpBase: string, writable: boolean, withVolumes: boolean): string[] {
  const { status, pid } = rec.state;
  if ((status === "running" || status === "paused" || status === "restarting") && pid > 0) return ["--pid", String(pid), "--cgroup", `/arcbox/${rec.id}`];
  if (!rec.rootfs.upperDir) throw new ContainerError("conflict", `container ${rec.id} has no root filesystem`);
  mkdirSync(tmpBase, { recursive: true, mode: 0o700 });
  // Without upperdir the overlay is read-only, and safe next to other mounts of the same layers.
  const layers = writable
    ? ["--lower", rec.rootfs.lowerDirs.join(":"), "--upper", rec.rootfs.upperDir, "--work", rec.rootfs.workDir]
    : ["--lower", [rec.rootfs.upperDir, ...rec.rootfs.lowerDirs].join(":")];
  return [...layers, "--mountpoint", tmpBase, ...bindsOf(rec, withVolumes).flatMap((b) => ["--bind", b.source, b.destination, b.rw ? "rw" : "ro"])];
}

/**
 * Volumes and binds, parents before children, as the container would see them. Those
 * missing here are left out; in VM mode (`inMachine`) the engine machine's agent does
 * that, as a volume's data is on the machine's disk (its Mountpoint is not a host path).
 */
function bindsOf(rec: ContainerRecord, withVolumes: boolean, inMachine = false): { source: string; destination: string; rw: boolean }[] {
  return (withVolumes ? rec.mounts : [])
    .filter((m) => (m.Type === "bind" || m.Type === "volume") && m.Source.startsWith("/") && (inMachine || existsSync(m.Source)))
    .sort((a, b) => a.Destination.split("/").length - b.Destination.split("/").length)
    .map((m) => ({ source: m.Source, destination: m.Destination, rw: m.RW }));
}

/**
 * node:child_process, not Bun.spawn: when the helper quits early (it answered an
 * error), the EPIPE of a pending stdin write must come back as an error of the
 * caller's pipeline; Bun.spawn's stdin raises it as an uncaught exception instead.
 */
function spawnHelper(argv: string[]): HelperRun {
  if (!existsSync(HELPER)) throw new ContainerError("unavailable", `${HELPER} is missing: run scripts/build-native.sh`);
  const child = spawn(HELPER, argv, { stdio: ["pipe", "pipe", "pipe"] });
  const err: Buffer[] = [];
  child.stderr.on("data", (b: Buffer) => err.push(b));
  const exited = new Promise<number>((resolve) => {
    child.once("error", () => resolve(127));
    child.once("close", (code, signal) => resolve(code ?? (signal ? 137 : 1)));
  });
  return {
    stdout: Readable.toWeb(child.stdout) as unknown as ReadableStream<Uint8Array>,
    stdin: child.stdin,
    stderr: async () => (await exited, Buffer.concat(err).toString()),
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

export class HostRootfsHelpers implements RootfsHelpers {
  run(r: HelperRequest): HelperRun {
    const root = hostRootArgs(r.rec, r.tmpBase, r.writable, r.op !== "export");
    return spawnHelper([...root, r.op, r.path, ...r.flags]);
  }

  async changes(rec: ContainerRecord): Promise<Change[]> {
    return upperChanges(rec.rootfs.upperDir, rec.rootfs.lowerDirs);
  }

  layerTar(): undefined {
    return undefined;
  }

  async discard(): Promise<void> {}

  async sizeRw(rec: ContainerRecord): Promise<number> {
    return rec.rootfs.upperDir ? dirSize(rec.rootfs.upperDir) : 0;
  }
}

/**
 * The engine machine's helper through vmm's files socket: a JSON request line, then
 * stdin; back come multiplexed frames (fd 1 stdout, fd 2 stderr, fd 3 the exit status).
 */
export class EngineRootfsHelpers implements RootfsHelpers {
  private readonly socketPath: string;

  constructor(runDir: string) {
    this.socketPath = join(runDir, ENGINE_FILES_SOCKET);
  }

  private request(rec: ContainerRecord, op: string, extra: { path?: string; flags?: string[]; writable?: boolean } = {}): HelperRun {
    // The running container's pid is the agent's to know; the layers and binds are host paths vmm translates.
    const body = { op, id: rec.id, path: extra.path ?? "/", flags: extra.flags ?? [], writable: !!extra.writable, lowerDirs: rec.rootfs.lowerDirs, binds: bindsOf(rec, true, true) };
    const sock = connect({ path: this.socketPath, allowHalfOpen: true });
    sock.on("error", () => {});
    sock.write(`${JSON.stringify(body)}\n`);
    let err = "";
    let code: number | undefined;
    let resolveExit!: (code: number) => void;
    const exited = new Promise<number>((r) => (resolveExit = r));
    let buf: Buffer = Buffer.alloc(0);
    let ctrl!: ReadableStreamDefaultController<Uint8Array>;
    const stdout = new ReadableStream<Uint8Array>(
      {
        start: (c) => void (ctrl = c),
        pull: () => void sock.resume(),
        cancel: () => void sock.destroy(),
      },
      { highWaterMark: 4 },
    );
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      try {
        ctrl.close();
      } catch {}
      resolveExit(code ?? 255);
    };
    sock.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      while (buf.length >= 8) {
        const len = buf.readUInt32BE(4);
        if (buf.length < 8 + len) break;
        const fd = buf[0];
        const payload = buf.subarray(8, 8 + len);
        buf = buf.subarray(8 + len);
        if (fd === 1) {
          try {
            if (!done) ctrl.enqueue(new Uint8Array(payload));
          } catch {} // cancelled by its reader
        } else if (fd === 2) err += payload.toString();
        else if (fd === 3 && payload.length === 4) code = payload.readInt32BE(0);
      }
      // The reader is behind: stop reading the socket (vmm then pauses the helper).
      if ((ctrl.desiredSize ?? 1) <= 0) sock.pause();
    });
    sock.on("close", () => {
      if (code === undefined && !err) err = "the engine machine's files stream ended early (the machine or vmm went away)";
      finish();
    });
    return {
      stdout,
      stdin: sock,
      stderr: async () => (await exited, err),
      exited,
      kill: () => void sock.destroy(),
    };
  }

  run(r: HelperRequest): HelperRun {
    return this.request(r.rec, r.op, { path: r.path, flags: r.flags, writable: r.writable });
  }

  async changes(rec: ContainerRecord): Promise<Change[]> {
    const run = this.request(rec, "changes");
    run.stdin.end();
    const out = await new Response(run.stdout).text();
    const code = await run.exited;
    if (code !== 0) throw new ContainerError("internal", `docker diff in the engine machine failed: ${(await run.stderr()).trim() || `exit ${code}`}`);
    return JSON.parse(out) as Change[];
  }

  layerTar(rec: ContainerRecord): HelperRun {
    const run = this.request(rec, "layer");
    run.stdin.end();
    return run;
  }

  async discard(rec: ContainerRecord): Promise<void> {
    const run = this.request(rec, "discard");
    run.stdin.end();
    await new Response(run.stdout).arrayBuffer();
    const code = await run.exited;
    if (code !== 0) throw new ContainerError("internal", `removing the container's files in the engine machine failed: ${(await run.stderr()).trim() || `exit ${code}`}`);
  }

  /** The upper dir is on the machine's disk: the agent walks it (0 while the machine is not running: vmm does not boot it for this). */
  async sizeRw(rec: ContainerRecord): Promise<number> {
    const run = this.request(rec, "size");
    run.stdin.end();
    const out = await new Response(run.stdout).text();
    const code = await run.exited;
    if (code !== 0) throw new ContainerError("internal", `measuring the container's files in the engine machine failed: ${(await run.stderr()).trim() || `exit ${code}`}`);
    return FilesSizeAnswer.parse(JSON.parse(out)).sizeRw;
  }
}

/** The backend of this daemon's engine mode. */
export function rootfsHelpers(runDir: string): RootfsHelpers {
  return ENGINE_IS_VM ? new EngineRootfsHelpers(runDir) : new HostRootfsHelpers();
}

export type { Change };
