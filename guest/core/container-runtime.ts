/**
 * Container lifecycle on this machine: OCI bundle + overlay rootfs + runc via a shim.
 * Every step that creates something is undone when a later step fails, so a failed
 * create leaves no mount, bundle, cgroup or runc state behind.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, openSync, writeSync, closeSync, constants } from "node:fs";
import { join } from "node:path";
import type { ContainerState, CreateContainerRequest, Resources } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { newContainerState } from "../../proto/gen/arcbox/machines/v1/machines_codec.ts";
import type { Logger } from "../../lib/log.ts";
import { oomCountersPath, removeCgroups, removeCgroupsOfStopped, warmCgroupMigrationForCreate } from "../platform/cgroups.ts";
import { mountRootfs, releaseUnusedLayers } from "../platform/layer-images.ts";
import { acquireVolumeTmpfs, releaseUnusedVolumeTmpfs } from "../vm/volume-tmpfs.ts";
import { unmountIfMounted } from "../platform/overlay.ts";
import type { OciRuntime } from "../platform/runc.ts";
import { selectOciRuntime } from "../platform/oci-runtime-select.ts";
import { PhaseTimer } from "../platform/phase-trace.ts";
import { startCreated, startShim } from "../platform/shim.ts";
import type { EventHub } from "./event-hub.ts";
import { GuestError, checkId } from "./guest-error.ts";
import { KeyedLock } from "./keyed-lock.ts";
import type { AgentLayout } from "./layout.ts";
import { buildOciSpec, ociResources } from "./oci-spec.ts";
import { nowUnixNano, type ContainerRecord, type RecordStore } from "../storage/records.ts";

/** `--init`'s tini: the host's Debian package, or the tools image's copy in a machine. */
const INIT_BINARY = ["/usr/bin/tini-static", "/usr/bin/tini", "/opt/arcbox/bin/tini"].find((p) => existsSync(p)) ?? "/usr/bin/tini";
/** A unified (v2) cgroup hierarchy, as in the engine machine: containers get a cgroup namespace. */
const CGROUP_V2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
const DELETE_EXIT_WAIT_MS = 10_000;

export class ContainerRuntime {
  /** runc on the host, crun in a machine where it works (oci-runtime-select.ts). */
  private runtime: Promise<OciRuntime> | undefined;
  readonly lock = new KeyedLock();
  /** Resolvers waiting for a container's exit notification (force delete). */
  private exitWaiters = new Map<string, () => void>();

  constructor(
    readonly layout: AgentLayout,
    readonly records: RecordStore,
    private readonly events: EventHub,
    private readonly log: Logger,
    private readonly inVm = false,
  ) {
    mkdirSync(layout.runcRoot, { recursive: true, mode: 0o700 });
    mkdirSync(layout.ioDir, { recursive: true, mode: 0o700 });
  }

  /**
   * The OCI runtime containers run with, chosen on first use: in a machine the choice
   * runs `crun --version`, which under TCG would compete with the boot's first
   * `machine exec` (it needs no runtime) for the one vCPU.
   */
  oci(): Promise<OciRuntime> {
    return (this.runtime ??= selectOciRuntime(this.layout.runcRoot, this.inVm, this.log));
  }

  get(id: string): ContainerRecord {
    const r = this.records.containers.get(id);
    if (!r) throw new GuestError("not_found", `no such container: ${id}`);
    return r;
  }

  create(req: CreateContainerRequest): Promise<{ pid: number; stdioSocket: string }> {
    const id = checkId("container", req.id);
    if (!req.process || req.process.args.length === 0) throw new GuestError("invalid_argument", "no command specified");
    if (!req.rootfs) throw new GuestError("invalid_argument", "rootfs is required");
    return this.lock.run(id, async () => {
      if (this.records.containers.has(id) || existsSync(this.layout.containerDir(id))) throw new GuestError("already_exists", `container ${id} already exists`);
      const dir = this.layout.containerDir(id);
      const rootfs = this.layout.rootfsDir(id);
      const p = req.process!;
      const phases = new PhaseTimer("create", id);
      let releaseTmpfs = () => {};
      try {
        // runc create's cgroup join then skips the kernel's ~15 ms grace-period wait.
        warmCgroupMigrationForCreate();
        mkdirSync(rootfs, { recursive: true, mode: 0o700 });
        await mountRootfs(req.rootfs!, rootfs, undefined, phases);
        // Type=tmpfs volumes (VM mode): mounted in the machine, held until crun's create binds them.
        releaseTmpfs = await acquireVolumeTmpfs(req.mounts);
        const shared = { pid: this.sharedNs(req.pidMode, "pid", "PID"), ipc: this.sharedNs(req.ipcMode, "ipc", "IPC"), uts: this.sharedNs(req.utsMode, "uts", "UTS") };
        const spec = buildOciSpec(req, { rootfs, cgroupsPath: this.layout.cgroupPath(id), netnsPath: this.netnsPath(req), initBinary: INIT_BINARY, shared, cgroupNamespace: CGROUP_V2 });
        writeFileSync(join(this.layout.bundleDir(id), "config.json"), JSON.stringify(spec));
        const record: ContainerRecord = {
          v: 1,
          id,
          createdAtUnixNano: String(nowUnixNano()),
          pid: 0,
          paused: false,
          tty: p.tty,
          stdioSocket: this.layout.stdioSocket(id),
          cgroupPath: this.layout.cgroupPath(id),
          env: spec.process.env,
          user: p.user,
          capAdd: p.capAdd,
          capDrop: p.capDrop,
          privileged: p.privileged,
        };
        // Saved before runc runs: a crash mid-create still leaves a record to clean up.
        this.records.saveContainer(record);
        const oci = await this.oci();
        phases.mark("spec");
        record.pid = await startShim({
          mode: "create",
          id,
          stateDir: dir,
          runc: oci.binary,
          runcRoot: this.layout.runcRoot,
          bundle: this.layout.bundleDir(id),
          stdioSocket: record.stdioSocket,
          consoleSocket: this.layout.consoleSocket(id),
          notifySocket: this.layout.notifySocket,
          logPath: req.logPath || undefined,
          oomControl: oomCountersPath(record.cgroupPath),
          tty: p.tty,
          stdin: p.openStdin,
          stdinOnce: p.stdinOnce,
          hold: false,
          executable: p.args[0],
        });
        releaseTmpfs();
        phases.mark(`shim(${oci.name})`);
        this.records.saveContainer(record);
        phases.end();
        return { pid: record.pid, stdioSocket: record.stdioSocket };
      } catch (err) {
        releaseTmpfs();
        await this.destroy(id, true).catch((e) => this.log.error("cleanup after failed create", { id, error: e }));
        throw err;
      }
    });
  }

  /** The running container a "container:<id>" mode names (dockerd's wording when it is not running). */
  private peerOf(mode: string, what: string): ContainerRecord | undefined {
    if (!mode.startsWith("container:")) return undefined;
    const other = this.records.containers.get(mode.slice("container:".length));
    if (!other?.pid || this.records.status(other) !== "running") throw new GuestError("failed_precondition", `cannot join ${what} of a non running container: ${mode.slice("container:".length)}`);
    return other;
  }

  /** PidMode/IpcMode/UTSMode for the spec: undefined (own), "host", or the namespace path to join. */
  private sharedNs(mode: string, ns: string, what: string): string | undefined {
    if (mode === "host") return "host";
    const other = this.peerOf(mode, what);
    return other ? `/proc/${other.pid}/ns/${ns}` : undefined;
  }

  /** The network namespace to join: netd's path, or another container's ("container:<id>"). */
  private netnsPath(req: CreateContainerRequest): string | undefined {
    if (req.joinNetnsOf) {
      const other = this.records.containers.get(req.joinNetnsOf.replace(/^container:/, ""));
      if (!other?.pid || this.records.status(other) === "stopped") throw new GuestError("failed_precondition", `cannot join the network of ${req.joinNetnsOf}: container is not running`);
      return `/proc/${other.pid}/ns/net`;
    }
    return req.netnsPath || undefined;
  }

  start(id: string): Promise<{ pid: number; startedAtUnixNano: bigint }> {
    return this.lock.run(id, async () => {
      const r = this.get(id);
      const status = this.records.status(r);
      if (status !== "created") throw new GuestError("failed_precondition", `container ${id} is ${status}, not created`);
      // Taken before runc start: a process that exits at once must not finish before it started.
      const startedAt = nowUnixNano();
      // runc's own layout (1.1), and crun's: the init waits on <root>/<id>/exec.fifo
      // until started (runc's writes to it, crun's reads from it).
      const oci = await this.oci();
      const phases = new PhaseTimer("start", id);
      const execFifo = join(this.layout.runcRoot, id, "exec.fifo");
      if (existsSync(execFifo)) await startCreated(execFifo, r.pid, oci.name);
      else await oci.start(id);
      phases.mark(`fifo(${oci.name})`);
      r.startedAtUnixNano = String(startedAt);
      this.records.saveContainer(r);
      phases.end();
      this.events.emit({ type: "start", containerId: id, timeUnixNano: startedAt });
      return { pid: r.pid, startedAtUnixNano: startedAt };
    });
  }

  kill(id: string, signal: string, all: boolean): Promise<void> {
    return this.lock.run(id, async () => {
      const r = this.get(id);
      if (this.records.status(r) === "stopped") throw new GuestError("failed_precondition", `container ${id} is not running`);
      await (await this.oci()).kill(id, normalizeSignal(signal), all);
    });
  }

  delete(id: string, force: boolean): Promise<void> {
    checkId("container", id);
    return this.lock.run(id, async () => {
      // A create cut short before its record was written: only its leftovers remain.
      if (!this.records.containers.has(id) && existsSync(this.layout.containerDir(id))) return this.destroy(id, true);
      const r = this.get(id);
      const status = this.records.status(r);
      if (status !== "stopped" && status !== "created" && !force) throw new GuestError("failed_precondition", `container ${id} is ${status}: stop it first or force`);
      if (status === "stopped") {
        // The init is gone and, with it, its pid namespace: `runc delete` (~37 ms) would
        // only remove its state dir and the cgroups, which we do without a process.
        const phases = new PhaseTimer("delete", id);
        rmSync(join(this.layout.runcRoot, id), { recursive: true, force: true });
        await removeCgroupsOfStopped(this.layout.cgroupPath(id));
        phases.mark("cgroups");
        await this.destroy(id, false, phases);
        phases.end();
        return;
      }
      const exited = new Promise<void>((resolve) => this.exitWaiters.set(id, resolve));
      if (status === "paused") await (await this.oci()).resume(id).catch(() => {});
      await (await this.oci()).delete(id, true).catch((e) => this.log.warn("runtime delete", { id, error: e }));
      // Let the shim record the exit (and emit "exit") before its state dir goes away.
      await Promise.race([exited, Bun.sleep(DELETE_EXIT_WAIT_MS)]);
      this.exitWaiters.delete(id);
      await this.destroy(id, false);
    });
  }

  /** Removes everything of a container: runc state, mount, cgroups, bundle, record. */
  private async destroy(id: string, killFirst: boolean, phases?: PhaseTimer): Promise<void> {
    if (killFirst) await (await this.oci()).delete(id, true).catch(() => {});
    // Exec shims may still wait for a first client that will never come now.
    for (const e of this.records.execs.values()) {
      if (e.containerId !== id) continue;
      endShim(this.layout.execDir(id, e.id), e.id);
      rmSync(this.layout.stdioSocket(e.id), { force: true });
      rmSync(this.layout.consoleSocket(e.id), { force: true });
    }
    await unmountIfMounted(this.layout.rootfsDir(id));
    phases?.mark("umount");
    await releaseUnusedLayers();
    phases?.mark("layers");
    await releaseUnusedVolumeTmpfs().catch((err) => this.log.warn("could not release tmpfs volumes", { error: err }));
    removeCgroups(this.layout.cgroupPath(id));
    rmSync(this.layout.containerDir(id), { recursive: true, force: true });
    phases?.mark("rm");
    rmSync(this.layout.stdioSocket(id), { force: true });
    rmSync(this.layout.consoleSocket(id), { force: true });
    this.records.forgetContainer(id);
  }

  pause(id: string): Promise<void> {
    return this.lock.run(id, async () => {
      const r = this.get(id);
      if (this.records.status(r) !== "running") throw new GuestError("failed_precondition", `container ${id} is not running`);
      try {
        await (await this.oci()).pause(id);
        r.paused = true;
        this.records.saveContainer(r);
      } catch (err) {
        // runc freezes before it writes its state (which fails on a full disk): thaw, so a
        // failed pause leaves the container running, as the error says.
        r.paused = false;
        await (await this.oci()).resume(id).catch(() => {});
        throw err;
      }
      this.events.emit({ type: "pause", containerId: id });
    });
  }

  resume(id: string): Promise<void> {
    return this.lock.run(id, async () => {
      const r = this.get(id);
      if (this.records.status(r) !== "paused") throw new GuestError("failed_precondition", `container ${id} is not paused`);
      await (await this.oci()).resume(id);
      try {
        r.paused = false;
        this.records.saveContainer(r);
      } catch (err) {
        // The record still says paused (a full disk): freeze again, so state and record agree.
        r.paused = true;
        await (await this.oci()).pause(id).catch(() => {});
        throw err;
      }
      this.events.emit({ type: "resume", containerId: id });
    });
  }

  update(id: string, resources: Resources | undefined): Promise<void> {
    return this.lock.run(id, async () => {
      this.get(id);
      const { devices: _devices, ...res } = ociResources(resources);
      await (await this.oci()).update(id, res, join(this.layout.containerDir(id), "resources.json"));
    });
  }

  state(id: string): ContainerState {
    const r = this.get(id);
    const exit = this.records.containerExit(id);
    return {
      ...newContainerState(),
      id,
      status: this.records.status(r),
      pid: exit ? 0 : r.pid,
      exitCode: exit?.exitCode ?? 0,
      startedAtUnixNano: BigInt(r.startedAtUnixNano ?? 0),
      finishedAtUnixNano: exit?.finishedAtUnixNano ?? 0n,
      oomKilled: exit?.oomKilled ?? false,
      stdioSocket: exit ? "" : r.stdioSocket,
    };
  }

  /** Tells the shim to resize the pty (through its control FIFO). */
  resizeTty(stateDir: string, height: number, width: number): void {
    const ctl = join(stateDir, "ctl");
    let fd: number;
    try {
      fd = openSync(ctl, constants.O_WRONLY | constants.O_NONBLOCK);
    } catch {
      throw new GuestError("failed_precondition", "the process is not running");
    }
    try {
      writeSync(fd, `resize ${height} ${width}\n`);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * After an agent restart: drops creates that never finished and records an exit for a
   * container whose process and shim are gone without one (a killed shim), so no
   * container stays "running" forever.
   */
  async reconcile(): Promise<void> {
    // Directories without a record: an agent killed in the middle of a create.
    for (const id of readdirSync(this.layout.containersDir)) {
      if (this.records.containers.has(id)) continue;
      this.log.warn("removing the leftovers of a create that never finished", { id });
      await this.destroy(id, true).catch((err) => this.log.error("cleanup", { id, error: err }));
    }
    for (const r of [...this.records.containers.values()]) {
      if (!r.pid) {
        this.log.warn("removing a container whose create never finished", { id: r.id });
        await this.destroy(r.id, true).catch((err) => this.log.error("cleanup", { id: r.id, error: err }));
        continue;
      }
      if (this.records.containerExit(r.id) || isAlive(r.pid)) continue;
      this.log.warn("container process is gone without an exit status (shim killed?)", { id: r.id });
      writeFileSync(join(this.layout.containerDir(r.id), "exit"), JSON.stringify({ exitCode: 255, finishedAtUnixNano: Number(nowUnixNano()), oomKilled: false }));
    }
  }

  /** A shim reported that the container's init exited. */
  async onExit(id: string): Promise<void> {
    const r = this.records.containers.get(id);
    const exit = this.records.containerExit(id);
    // A container that never started (removed while "created") did not run: no events.
    if (r?.startedAtUnixNano && exit) {
      if (exit.oomKilled) this.events.emit({ type: "oom", containerId: id, timeUnixNano: exit.finishedAtUnixNano });
      this.events.emit({ type: "exit", containerId: id, exitCode: exit.exitCode, oomKilled: exit.oomKilled, timeUnixNano: exit.finishedAtUnixNano });
    }
    this.exitWaiters.get(id)?.();
  }

  /** Serialized with start, so "start" is always emitted before "exit". */
  onExitNotification(id: string): Promise<void> {
    if (this.exitWaiters.has(id)) return this.onExit(id); // delete holds the lock and waits for us
    return this.lock.run(id, () => this.onExit(id));
  }
}

/** Ends a shim by the pid it recorded, after checking that pid still is that shim. */
function endShim(stateDir: string, id: string): void {
  try {
    const pid = Number(readFileSync(join(stateDir, "shim.pid"), "utf8"));
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(id)) process.kill(pid, "SIGKILL");
  } catch {}
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** runc accepts "TERM", "SIGTERM" or "15"; we pass names upper-cased and numbers as is. */
export function normalizeSignal(signal: string): string {
  const s = (signal || "SIGKILL").trim().toUpperCase();
  if (/^\d+$/.test(s)) return s;
  return s.startsWith("SIG") ? s : `SIG${s}`;
}
