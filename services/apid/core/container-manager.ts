/**
 * Container orchestration: create, start, stop, kill, remove, wait, rename, pause,
 * over imaged (rootfs), netd (network), fsd (volumes) and vmm (runtime). Records are
 * the source of truth for the Docker API; runtime exits arrive through RuntimeMonitor.
 *
 * Where the work happens: create = imaged.PrepareRootfs + record (so `docker cp`,
 * `docker diff` work on created containers); start = netd.Attach and fsd.Mount in
 * parallel, then vmm.CreateContainer (attach sessions waiting for the container join
 * its stdio here, before the process runs) and vmm.StartContainer; exit = runtime
 * and network released; remove = volumes and rootfs released, record deleted.
 *
 * Each of them is ordered for crashes and full disks (docs/architecture.md, "Crashes
 * and full disks"): a write-ahead mark is persisted before a step creates something
 * (pending create, `runtimeHeld`, "removing"), and cleared only once it is released,
 * so recovery and rm -f know what to finish whatever step failed.
 */
import { HostRootfsHelpers, type RootfsHelpers } from "./rootfs-helper.ts";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../../../lib/log.ts";
import { ArcboxError } from "../../../lib/errors.ts";
import type { PrepareRootfsResponse } from "../../../proto/gen/arcbox/images/v1/images_pb.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { call, callIdempotent, type Backends } from "./backends.ts";
import type { ContainerBackend, ExecContainers } from "./container-backends.ts";
import { ContainerError, noSuchContainer } from "./container-error.ts";
import { ContainerLifecycle, type ExitResult, type Transition } from "./container-lifecycle.ts";
import { isActive, type ContainerRecord, type NetworkInfo } from "./container-record.ts";
import { linkedView, resolveLinks } from "./legacy-links.ts";
import { checkEndpointAddresses } from "./network-endpoints.ts";
import { addVolumesFrom, normalizeCreate, parseCreateBody, type ImageConfig } from "./create-config.ts";
import { resolveSharedModes } from "./host-options.ts";
import { planUpdate } from "./resource-limits.ts";
import type { EventsBus } from "./events-bus.ts";
import { ensureBindSources } from "./bind-sources.ts";
import { randomId, withDefaultTag } from "./container-ids.ts";
import { KeyedLock } from "./keyed-lock.ts";
import { generateName, isValidName } from "./names.ts";
import { restartDelayMs, shouldRestartOnDaemonStart, shouldRestartOnExit } from "./restart-policy.ts";
import { createRequest, HOST_MACHINE } from "./runtime-spec.ts";
import { RuntimeMonitor } from "./runtime-monitor.ts";
import { usesNetd } from "./engine-target.ts";
import { attachNetwork, mountVolumes } from "./start-resources.ts";
import { signalNumber } from "./signals.ts";
import { startFailure, within } from "./start-failure.ts";
import { storageError, type ContainerStore } from "./storage/container-store.ts";

/** Transient, per-container state that never outlives the process. */
interface Live {
  /** Attach sessions waiting for the runtime's stdio socket (attach before start). */
  pendingAttach: ((stdioSocket: string) => Promise<void>)[];
  /** Release of runtime and network after an exit; start and remove wait for it. */
  cleanup?: Promise<void>;
  restartTimer?: ReturnType<typeof setTimeout>;
  consecutiveRestarts: number;
  starting: boolean;
  earlyExit?: RuntimeEvent;
}

/** How long a SIGKILL is given to end the container (dockerd's Kill waits 10 s). */
const KILL_WAIT_MS = 10_000;

const nanoToIso = (ns: bigint) => (ns > 0n ? new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.(\d{3})Z$/, `.$1${String(ns % 1_000_000n).padStart(6, "0")}Z`) : new Date().toISOString());

export class ContainerManager implements ContainerBackend, ExecContainers {
  private readonly live = new Map<string, Live>();
  private readonly lock = new KeyedLock();
  private readonly reservedNames = new Set<string>();
  readonly monitor: RuntimeMonitor;
  /** Every status change goes through here: persist, emit, wake (container-lifecycle.ts). */
  readonly lifecycle: ContainerLifecycle;
  /** Runtime exec events are forwarded here (ExecManager). */
  onExecExit: (ev: RuntimeEvent) => void = () => {};
  onRemoved: (id: string) => void = () => {};

  constructor(
    readonly store: ContainerStore,
    readonly bus: EventsBus,
    readonly backends: Backends,
    private readonly dataDir: string,
    readonly log: Logger,
    /** Where container files are read and written (docker cp, diff, export, commit). */
    readonly rootfsHelpers: RootfsHelpers = new HostRootfsHelpers(),
  ) {
    this.lifecycle = new ContainerLifecycle(store, bus, log);
    this.monitor = new RuntimeMonitor(
      backends,
      log,
      {
        onEvent: (ev) => this.onRuntimeEvent(ev),
        reconcile: () => this.reconcile(),
        wanted: () => this.store.all().some((r) => isActive(r.state.status)) || [...this.live.values()].some((l) => l.starting),
      },
      join(dataDir, "events.fifo"),
    );
  }

  /** Runs `fn` while no start, remove or other exclusive operation runs on the container. */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.lock.run(id, fn);
  }

  containerDir(id: string): string {
    return join(this.dataDir, "containers", id);
  }

  private liveOf(id: string): Live {
    let l = this.live.get(id);
    if (!l) this.live.set(id, (l = { pendingAttach: [], consecutiveRestarts: 0, starting: false }));
    return l;
  }

  get(ref: string): ContainerRecord {
    const r = this.store.find(ref);
    if (!r) throw noSuchContainer(ref);
    if ("ambiguous" in r) throw new ContainerError("invalid_argument", `multiple IDs found with provided prefix: ${ref}`);
    return r;
  }

  find(ref: string): ContainerRecord | undefined {
    const r = this.store.find(ref);
    return r && !("ambiguous" in r) ? r : undefined;
  }

  list(): ContainerRecord[] {
    return this.store.all();
  }

  /** Publishes a container event with Docker's attributes (labels, image, name). */
  emit(rec: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    this.lifecycle.emit(rec, action, extra);
  }

  private save(rec: ContainerRecord, previousName?: string): void {
    this.store.save(rec, previousName);
  }

  // ---- create ----

  async create(raw: unknown, requestedName: string | undefined): Promise<{ Id: string; Warnings: string[] }> {
    const body = parseCreateBody(raw);
    if (!body.Image) throw new ContainerError("invalid_argument", "Config.Image is required");
    let name: string;
    if (requestedName) {
      if (!isValidName(requestedName)) throw new ContainerError("invalid_argument", `Invalid container name (${requestedName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      name = requestedName.startsWith("/") ? requestedName : `/${requestedName}`;
      this.checkNameFree(name);
    } else {
      name = `/${generateName((n) => !!this.store.byExactName(n) || this.reservedNames.has(`/${n}`))}`;
    }
    const hc = body.HostConfig ?? {};
    const networkMode = await this.resolveNetworkMode(hc.NetworkMode ?? "");
    const id = randomId();
    this.reservedNames.add(name);
    try {
      // Write-ahead: a crash from here until the record is saved leaves this mark, and
      // recovery releases the rootfs it may have taken (recover).
      this.store.beginCreate(id);
      let prepared: PrepareRootfsResponse;
      try {
        prepared = await call(() => this.backends.images.prepareRootfs({ image: body.Image!, containerId: id })).catch((err: ArcboxError) => {
          if (err.code === "not_found") throw new ContainerError("not_found", `No such image: ${withDefaultTag(body.Image!)}`);
          throw err;
        });
      } catch (err) {
        // imaged undoes its own half-made rootfs; released again in case the answer was lost.
        await this.undoCreate(id);
        throw err;
      }
      const dir = this.containerDir(id);
      let rec: ContainerRecord;
      try {
        const imageConfig = ((JSON.parse(prepared.configJson || "{}") as { config?: ImageConfig }).config ?? {}) as ImageConfig;
        const norm = normalizeCreate(body, body.Image, imageConfig);
        if (networkMode) norm.hostConfig.NetworkMode = networkMode;
        addVolumesFrom(norm.mounts, hc.VolumesFrom, (ref) => this.get(ref));
        resolveSharedModes(norm.hostConfig, (ref) => this.get(ref));
        resolveLinks(norm.hostConfig, norm.endpointsConfig, name, (ref) => this.get(ref));
        checkEndpointAddresses(norm.endpointsConfig);
        ensureBindSources(norm.mounts);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        rec = {
          id,
          name,
          created: new Date().toISOString(),
          imageRef: body.Image,
          imageId: prepared.imageId,
          path: norm.path,
          args: norm.args,
          config: norm.config,
          hostConfig: norm.hostConfig,
          endpointsConfig: norm.endpointsConfig,
          // Set by the lifecycle's "create" transition.
          state: { status: "created", pid: 0, exitCode: 0, error: "", oomKilled: false, startedAt: "", finishedAt: "" },
          restartCount: 0,
          manualStop: false,
          rootfs: { lowerDirs: prepared.lowerDirs, upperDir: prepared.upperDir, workDir: prepared.workDir },
          logPath: join(dir, `${id}-json.log`),
          mounts: norm.mounts,
          network: null,
          stdioSocket: "",
          runtimeHeld: false,
        };
        this.checkNameFree(name, true);
        this.lifecycle.apply(rec, { kind: "create" });
      } catch (err) {
        await this.undoCreate(id);
        throw storageError(err);
      }
      return { Id: id, Warnings: [] };
    } finally {
      this.reservedNames.delete(name);
    }
  }

  /**
   * Compensates a create that has no record: its directory and rootfs go, then its
   * write-ahead mark. If the rootfs cannot be released now, the mark stays for the next
   * recovery.
   */
  private async undoCreate(id: string): Promise<void> {
    try {
      rmSync(this.containerDir(id), { recursive: true, force: true });
      await callIdempotent(() => this.backends.images.releaseRootfs({ containerId: id }));
      this.store.abandonCreate(id);
    } catch (err) {
      this.log.warn("undo of a failed create is incomplete; recovery finishes it", { id, error: err });
    }
  }

  private checkNameFree(name: string, reservedByUs = false): void {
    const owner = this.store.byExactName(name);
    if (owner || (!reservedByUs && this.reservedNames.has(name)))
      throw new ContainerError(
        "conflict",
        `Conflict. The container name "${name}" is already in use by container "${owner?.id ?? "(being created)"}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
  }

  private async resolveNetworkMode(mode: string): Promise<string> {
    if (!mode.startsWith("container:")) return mode;
    const target = this.get(mode.slice("container:".length));
    return `container:${target.id}`;
  }

  // ---- start ----

  /** Returns false when the container was already running (Docker's 304). */
  async start(ref: string): Promise<boolean> {
    const rec = this.get(ref);
    try {
      return await this.startLocked(rec, ref);
    } catch (err) {
      // Docker removes an --rm container whose start failed (the CLI waits for that).
      if (rec.hostConfig.AutoRemove && this.store.get(rec.id)) await this.remove(rec.id, { force: true, volumes: true }).catch((e) => this.autoRemoveFailed(rec, e));
      throw err;
    }
  }

  private startLocked(rec: ContainerRecord, ref: string): Promise<boolean> {
    return this.lock.run(rec.id, async () => {
      await this.liveOf(rec.id).cleanup;
      if (!this.store.get(rec.id)) throw noSuchContainer(ref);
      const s = rec.state.status;
      if (s === "running") return false;
      if (s === "paused") throw new ContainerError("conflict", "cannot start a paused container, try unpause instead");
      if (s === "removing" || s === "dead") throw new ContainerError("conflict", `container ${rec.id} is marked for removal and cannot be started`);
      const l = this.liveOf(rec.id);
      if (l.restartTimer) clearTimeout(l.restartTimer), (l.restartTimer = undefined);
      l.consecutiveRestarts = 0;
      await this.runStart(rec);
      return true;
    });
  }

  private async runStart(rec: ContainerRecord): Promise<void> {
    const l = this.liveOf(rec.id);
    const mode = String(rec.hostConfig.NetworkMode);
    // Write-ahead: persisted before anything is created, so a crash at any later step
    // leaves a record that says what may need releasing (recovery, rm -f).
    if (rec.runtimeHeld !== true) {
      rec.runtimeHeld = true;
      this.save(rec);
    }
    let net: NetworkInfo | null = null;
    l.starting = true;
    try {
      // Settled, not raced: a failure of one must not leave the other's work unseen.
      const results = await Promise.allSettled([this.attachNetwork(rec, mode).then((n) => (net = n)), mountVolumes(this.backends, rec), this.monitor.ensure()]);
      for (const r of results) if (r.status === "rejected") throw r.reason;
      rec.network = net;
      const created = await this.createRuntime(rec, net!);
      rec.stdioSocket = created.stdioSocket;
      // Attach sessions join before the process runs, so no output is lost.
      await Promise.allSettled(l.pendingAttach.splice(0).map((join) => join(created.stdioSocket)));
      const started = await call(() => this.backends.machines.startContainer({ machine: HOST_MACHINE, id: rec.id }));
      rec.manualStop = false;
      this.lifecycle.apply(rec, { kind: "start", pid: started.pid, startedAt: nanoToIso(started.startedAtUnixNano), network: rec.network });
    } catch (err) {
      const e = err instanceof ArcboxError ? err : storageError(err);
      const error = e instanceof ArcboxError ? e : new ContainerError("internal", String(err));
      // An exit seen while this start was failing belongs to it, not to the next start.
      l.earlyExit = undefined;
      // Everything, not only what this run made: an interrupted earlier start may have left some.
      const released = await this.releaseRuntimeObjects(rec, true, true);
      rec.network = null;
      rec.stdioSocket = "";
      const failure = startFailure(error);
      if (released) rec.runtimeHeld = false;
      this.lifecycle.apply(rec, { kind: "start-failed", error: failure.message, exitCode: failure.exitCode });
      for (const join of l.pendingAttach.splice(0)) void join("").catch(() => {});
      throw failure.error;
    } finally {
      l.starting = false;
    }
    const early = l.earlyExit;
    l.earlyExit = undefined;
    if (early) this.onExit(early);
  }

  /** vmm.CreateContainer; a runtime container left by an interrupted start is replaced (adopted by id). */
  private async createRuntime(rec: ContainerRecord, net: NetworkInfo) {
    try {
      return await call(() => this.backends.machines.createContainer(createRequest(rec, net)));
    } catch (err) {
      if ((err as ArcboxError).code !== "already_exists") throw err;
      this.log.warn("replacing a runtime container left by an interrupted start", { id: rec.id });
      await callIdempotent(() => this.backends.machines.deleteContainer({ machine: HOST_MACHINE, id: rec.id, force: true }));
      return await call(() => this.backends.machines.createContainer(createRequest(rec, net)));
    }
  }

  private isNetdMode(rec: ContainerRecord): boolean {
    return usesNetd(String(rec.hostConfig.NetworkMode));
  }

  /**
   * Deletes the runtime container and detaches netd (each idempotent). Returns whether
   * both are gone for sure; if not, the record keeps `runtimeHeld` for a later retry.
   */
  private async releaseRuntimeObjects(rec: ContainerRecord, runtime: boolean, network: boolean): Promise<boolean> {
    const results = await Promise.allSettled([
      runtime ? callIdempotent(() => this.backends.machines.deleteContainer({ machine: HOST_MACHINE, id: rec.id, force: true })) : undefined,
      network && this.isNetdMode(rec) ? callIdempotent(() => this.backends.networks.detach({ containerId: rec.id })) : undefined,
    ]);
    for (const r of results) if (r.status === "rejected") this.log.warn("release of runtime objects failed", { id: rec.id, error: r.reason });
    return results.every((r) => r.status === "fulfilled");
  }

  /** Saves when it can; a failure (full disk) is logged, the caller's outcome stands. */
  private trySave(rec: ContainerRecord, what: string): boolean {
    try {
      this.save(rec);
      return true;
    } catch (err) {
      this.log.warn(`could not persist ${what}`, { id: rec.id, error: err });
      return false;
    }
  }

  private attachNetwork(rec: ContainerRecord, mode: string): Promise<NetworkInfo> {
    if (mode.startsWith("container:")) {
      const other = this.get(mode.slice("container:".length));
      if (other.state.status !== "running" || !other.network) throw new ContainerError("conflict", `cannot join network of a non running container: ${other.id}`);
      return Promise.resolve({ ...other.network });
    }
    return attachNetwork(
      this.backends,
      rec,
      mode,
      this.containerDir(rec.id),
      linkedView(rec, (ref) => this.get(ref)),
    );
  }

  // ---- runtime events ----

  private onRuntimeEvent(ev: RuntimeEvent): void {
    if (ev.type === "exec_exit") {
      this.onExecExit(ev);
      return;
    }
    const rec = this.store.get(ev.containerId);
    if (!rec) return;
    if (ev.type === "exit") this.onExit(ev);
    else if (ev.type === "oom") this.emit(rec, "oom");
  }

  private onExit(ev: RuntimeEvent): void {
    const rec = this.store.get(ev.containerId);
    if (!rec) return;
    const l = this.liveOf(rec.id);
    if (l.starting) {
      l.earlyExit = ev;
      return;
    }
    if (rec.state.status !== "running" && rec.state.status !== "paused") return;
    // The exit of a runtime container this run replaced (left by an interrupted start),
    // not of this run's process: it ended before this run started.
    const startedNs = BigInt(Date.parse(rec.state.startedAt) || 0) * 1_000_000n;
    if (ev.timeUnixNano > 0n && ev.timeUnixNano < startedNs) return;
    const finishedAt = nanoToIso(ev.timeUnixNano);
    if (Date.parse(finishedAt) - Date.parse(rec.state.startedAt) >= 10_000) l.consecutiveRestarts = 0;
    // The exit status must be on disk before the runtime container (its other copy) goes.
    // If it cannot be saved (full disk), the runtime container keeps it: the record shows
    // the exit now and persists it with its next save, or recovery reads it back.
    const persisted = this.lifecycle.apply(rec, { kind: "exit", exitCode: ev.exitCode, oomKilled: ev.oomKilled, finishedAt, network: rec.network });
    rec.network = null;
    rec.stdioSocket = "";
    const cleanup = persisted ? this.releaseRuntime(rec) : Promise.resolve();
    l.cleanup = cleanup;
    void cleanup.then(() => {
      if (l.cleanup === cleanup) l.cleanup = undefined;
      return this.afterExit(rec);
    });
  }

  private async releaseRuntime(rec: ContainerRecord): Promise<void> {
    if (await this.releaseRuntimeObjects(rec, true, true)) rec.runtimeHeld = false;
    this.trySave(rec, "runtime release");
  }

  private async afterExit(rec: ContainerRecord): Promise<void> {
    if (this.store.get(rec.id) && rec.state.status === "exited") {
      try {
        if (shouldRestartOnExit(rec)) return this.scheduleRestart(rec);
      } catch (err) {
        this.log.warn("restart policy not applied", { id: rec.id, error: err });
      }
      if (rec.hostConfig.AutoRemove) await this.remove(rec.id, { force: false, volumes: true }).catch((e) => this.autoRemoveFailed(rec, e));
    }
    // Nothing left to watch: let the runtime stream go, so an idle daemon holds nothing open.
    this.monitor.releaseIfUnwanted();
  }

  /** An --rm container that could not be removed: `docker run --rm` waits for "removed", tell it why not. */
  private autoRemoveFailed(rec: ContainerRecord, err: unknown): void {
    this.log.warn("auto-remove failed", { id: rec.id, error: err });
    this.lifecycle.failRemoval(rec.id, { code: rec.state.exitCode, error: `removal of container ${rec.id} failed: ${(err as Error).message}` });
  }

  private scheduleRestart(rec: ContainerRecord): void {
    const l = this.liveOf(rec.id);
    this.lifecycle.apply(rec, { kind: "restart-scheduled" });
    const delay = restartDelayMs(l.consecutiveRestarts++);
    l.restartTimer = setTimeout(() => {
      l.restartTimer = undefined;
      void this.lock
        .run(rec.id, async () => {
          if (rec.state.status !== "restarting" || !this.store.get(rec.id)) return;
          rec.restartCount++;
          await this.runStart(rec);
          this.emit(rec, "restart");
        })
        .catch((err) => {
          this.log.warn("restart failed", { id: rec.id, error: err });
          if (this.store.get(rec.id) && shouldRestartOnExit(rec)) this.scheduleRestart(rec);
        });
    }, delay);
  }

  // ---- stop, kill, pause ----

  /** Resolves at the container's next exit. */
  waitExit(id: string, signal?: AbortSignal): Promise<ExitResult> {
    return this.lifecycle.waitExit(id, signal);
  }

  /** Resolves once the container has exited for good: not when a restart policy brings it back. */
  async waitStopped(id: string, signal?: AbortSignal): Promise<void> {
    for (;;) {
      await this.waitExit(id, signal);
      // afterExit (which may schedule a restart) runs as soon as the cleanup settles.
      await this.live.get(id)?.cleanup;
      const rec = this.store.get(id);
      if (rec?.state.status !== "restarting") return;
    }
  }

  /** Resolves when the container is removed. */
  waitRemoved(id: string, signal?: AbortSignal): Promise<ExitResult> {
    return this.lifecycle.waitRemoved(id, signal);
  }

  /**
   * Between an exit and its restart policy the record says "exited" while the runtime is
   * released (a vmm call: seconds in VM mode); the policy is applied after that. A stop or
   * kill in that window must see the restart to come and cancel it (dockerd decides the
   * restart with the exit, so its stop never sees the gap), else it answers "not
   * running" and the container comes back.
   */
  private async exitSettled(rec: ContainerRecord): Promise<void> {
    const pending = this.liveOf(rec.id).cleanup;
    // onExit's own continuation (afterExit, which schedules the restart) runs before ours.
    if (pending && rec.state.status === "exited") await pending;
  }

  private cancelRestart(rec: ContainerRecord): boolean {
    const l = this.liveOf(rec.id);
    if (rec.state.status !== "restarting") return false;
    if (l.restartTimer) clearTimeout(l.restartTimer), (l.restartTimer = undefined);
    rec.manualStop = true;
    this.lifecycle.apply(rec, { kind: "restart-cancelled" });
    return true;
  }

  /** Returns false when the container was not running (Docker's 304). */
  async stop(ref: string, signal: string | undefined, timeoutSec: number | undefined): Promise<boolean> {
    const rec = this.get(ref);
    // Under the lock: a policy restart in progress finishes first, then is stopped for good.
    return this.lock.run(rec.id, () => this.stopLocked(rec, signal, timeoutSec));
  }

  private async stopLocked(rec: ContainerRecord, signal: string | undefined, timeoutSec: number | undefined): Promise<boolean> {
    await this.exitSettled(rec);
    if (this.cancelRestart(rec)) return true;
    if (rec.state.status !== "running" && rec.state.status !== "paused") return false;
    const sig = signal || rec.config.StopSignal || "SIGTERM";
    if (!signalNumber(sig)) throw new ContainerError("invalid_argument", `Invalid signal: ${sig}`);
    rec.manualStop = true;
    this.save(rec);
    const exited = this.waitExit(rec.id);
    await this.signal(rec, sig);
    const t = timeoutSec ?? rec.config.StopTimeout ?? 10;
    if (t < 0) await exited;
    else if (!(await within(exited, t * 1000))) {
      await this.signal(rec, "SIGKILL");
      if (!(await within(exited, 30_000))) throw new ContainerError("internal", `container ${rec.id} did not exit after SIGKILL`);
    }
    this.emit(rec, "stop");
    await this.liveOf(rec.id).cleanup;
    return true;
  }

  private async signal(rec: ContainerRecord, sig: string): Promise<void> {
    const wasPaused = rec.state.status === "paused";
    await call(() => this.backends.machines.killContainer({ machine: HOST_MACHINE, id: rec.id, signal: sig, all: false })).catch((err: ArcboxError) => {
      // The process may have exited between our check and the signal.
      if (err.code !== "not_found" && err.code !== "failed_precondition") throw err;
    });
    this.emit(rec, "kill", { signal: String(signalNumber(sig) ?? sig) });
    // A frozen process only sees the signal once thawed.
    if (wasPaused) {
      await callIdempotent(() => this.backends.machines.resumeContainer({ machine: HOST_MACHINE, id: rec.id })).catch(() => {});
      if (rec.state.status === "paused") this.lifecycle.apply(rec, { kind: "thaw" });
    }
  }

  async kill(ref: string, signal = "SIGKILL"): Promise<void> {
    const rec = this.get(ref);
    if (!signalNumber(signal)) throw new ContainerError("invalid_argument", `Invalid signal: ${signal}`);
    await this.exitSettled(rec);
    if (this.cancelRestart(rec)) return;
    if (rec.state.status !== "running" && rec.state.status !== "paused") throw new ContainerError("conflict", `Cannot kill container: ${ref}: Container ${rec.id} is not running`);
    rec.manualStop = true;
    this.save(rec);
    // As dockerd: SIGKILL returns once the container has stopped (its exit recorded, so
    // an inspect that follows says so); other signals once delivered.
    const exited = signalNumber(signal) === 9 ? this.waitExit(rec.id) : undefined;
    await this.signal(rec, signal);
    if (exited && !(await within(exited, KILL_WAIT_MS))) throw new ContainerError("internal", `tried to kill container, but did not receive an exit event`);
  }

  async restart(ref: string, signal: string | undefined, timeoutSec: number | undefined): Promise<void> {
    const rec = this.get(ref);
    await this.stop(rec.id, signal, timeoutSec);
    await this.start(rec.id);
    this.emit(rec, "restart");
  }

  async pause(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (rec.state.status === "paused") throw new ContainerError("conflict", `Container ${rec.id} is already paused`);
    if (rec.state.status !== "running") throw new ContainerError("conflict", `Container ${rec.id} is not running`);
    await call(() => this.backends.machines.pauseContainer({ machine: HOST_MACHINE, id: rec.id }));
    await this.applyOrUndo(rec, { kind: "pause" }, () => this.backends.machines.resumeContainer({ machine: HOST_MACHINE, id: rec.id }));
  }

  async unpause(ref: string): Promise<void> {
    const rec = this.get(ref);
    if (rec.state.status !== "paused") throw new ContainerError("conflict", `Container ${rec.id} is not paused`);
    await call(() => this.backends.machines.resumeContainer({ machine: HOST_MACHINE, id: rec.id }));
    await this.applyOrUndo(rec, { kind: "unpause" }, () => this.backends.machines.pauseContainer({ machine: HOST_MACHINE, id: rec.id }));
  }

  /**
   * Runs `fn` with a running container paused, as dockerd's commit does: through the
   * lifecycle (state "paused", pause and unpause events), and unpaused again afterwards
   * whatever `fn` did. A container that is not running (or cannot be paused) runs `fn`
   * as it is, as dockerd ignores that failure.
   */
  async whilePaused<T>(ref: string, fn: () => Promise<T>): Promise<T> {
    const rec = this.get(ref);
    let paused = false;
    if (rec.state.status === "running") {
      paused = await this.pause(rec.id).then(
        () => true,
        (err) => (this.log.warn("pause before commit failed", { id: rec.id, error: err }), false),
      );
    }
    try {
      return await fn();
    } finally {
      if (paused) await this.unpause(rec.id).catch((err) => this.log.warn("unpause after commit failed", { id: rec.id, error: err }));
    }
  }

  /** Records a change the runtime already made; if the save fails, the runtime change is undone (best effort) and the error stands. */
  private async applyOrUndo(rec: ContainerRecord, t: Transition, undo: () => Promise<unknown>): Promise<void> {
    try {
      this.lifecycle.apply(rec, t);
    } catch (err) {
      await callIdempotent(undo).catch((e) => this.log.warn("undo after a failed save", { id: rec.id, error: e }));
      throw err;
    }
  }

  // ---- remove ----

  /**
   * Removal is write-ahead: the record is marked "removing" (with what to remove) and
   * persisted first, then the runtime container, network, volumes and rootfs are
   * released, then the record is deleted. A failure leaves the record "dead" (or
   * "removing" on disk), and the next rm or the next recovery finishes the job.
   */
  async remove(ref: string, opts: { force: boolean; volumes: boolean }): Promise<void> {
    const rec = this.get(ref);
    await this.lock.run(rec.id, async () => {
      if (!this.store.get(rec.id)) return;
      const unfinished = rec.state.status === "removing" || rec.state.status === "dead";
      if (!unfinished) {
        this.cancelRestart(rec);
        if (rec.state.status === "running" || rec.state.status === "paused") {
          if (!opts.force) throw new ContainerError("conflict", `cannot remove container "${rec.name}": container is ${rec.state.status}: stop the container before removing or force remove`);
          rec.manualStop = true;
          const exited = this.waitExit(rec.id);
          await this.signal(rec, "SIGKILL");
          if (!(await within(exited, 30_000))) throw new ContainerError("internal", `container ${rec.id} did not exit after SIGKILL`);
        }
        await this.liveOf(rec.id).cleanup;
      }
      this.lifecycle.apply(rec, { kind: "remove", volumes: opts.volumes });
      await this.finishRemoval(rec);
    });
  }

  private async finishRemoval(rec: ContainerRecord): Promise<void> {
    try {
      // Whatever a start may have made, whether or not the record got to say so.
      if (rec.runtimeHeld !== false && !(await this.releaseRuntimeObjects(rec, true, true))) throw new ContainerError("internal", `could not release the runtime of container ${rec.id}`);
      await Promise.all([
        rec.mounts.some((m) => m.Type === "volume") ? callIdempotent(() => this.backends.volumes.unmount({ containerId: rec.id, removeAnonymous: !!rec.removal?.volumes })) : undefined,
        callIdempotent(() => this.backends.images.releaseRootfs({ containerId: rec.id })),
        // Best effort: what a failure leaves is only disk space in the engine machine.
        this.rootfsHelpers.discard(rec).catch((err) => this.log.warn("could not remove the container's files in the engine machine", { id: rec.id, error: err })),
      ]);
      rmSync(this.containerDir(rec.id), { recursive: true, force: true });
      this.lifecycle.apply(rec, { kind: "removed" });
    } catch (err) {
      const e = storageError(err);
      this.lifecycle.apply(rec, { kind: "remove-failed", error: `removal failed: ${e.message}` });
      throw e;
    }
    this.onRemoved(rec.id);
    this.live.delete(rec.id);
  }

  // ---- rename, update ----

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.get(ref);
    if (!newName) throw new ContainerError("invalid_argument", "Neither old nor new names may be empty");
    if (!isValidName(newName)) throw new ContainerError("invalid_argument", `Invalid container name (${newName}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const name = newName.startsWith("/") ? newName : `/${newName}`;
    if (name === rec.name) throw new ContainerError("invalid_argument", `Renaming a container with the same name as its current name`);
    try {
      this.checkNameFree(name);
    } catch (err) {
      throw err instanceof ContainerError ? new ContainerError(err.code, `Error when allocating new name: ${err.message}`) : err;
    }
    const old = rec.name;
    rec.name = name;
    this.save(rec, old);
    this.emit(rec, "rename", { oldName: old });
  }

  async update(ref: string, body: unknown): Promise<string[]> {
    const rec = this.get(ref);
    // Validated in full against the record first: nothing is applied or stored otherwise.
    const h = { ...rec.hostConfig, ...planUpdate(body, rec.hostConfig) };
    if (rec.state.status === "running" || rec.state.status === "paused") {
      await call(() =>
        this.backends.machines.updateContainer({
          machine: HOST_MACHINE,
          id: rec.id,
          resources: {
            memoryBytes: BigInt(h.Memory ?? 0),
            memorySwapBytes: BigInt(h.MemorySwap ?? 0),
            nanoCpus: BigInt(h.NanoCpus ?? 0),
            cpuShares: BigInt(h.CpuShares ?? 0),
            cpuQuota: BigInt(h.CpuQuota ?? 0),
            cpuPeriod: BigInt(h.CpuPeriod ?? 0),
            cpusetCpus: h.CpusetCpus ?? "",
            pidsLimit: BigInt(h.PidsLimit ?? 0),
          },
        }),
      );
    }
    rec.hostConfig = h;
    this.save(rec);
    this.emit(rec, "update");
    return [];
  }

  /** Network connect/disconnect: the new EndpointsConfig and, while running, netd's endpoints (inspect). */
  saveNetworkChange(rec: ContainerRecord, endpointsConfig: ContainerRecord["endpointsConfig"], live: NetworkInfo | undefined): void {
    rec.endpointsConfig = endpointsConfig;
    if (live && (rec.state.status === "running" || rec.state.status === "paused")) rec.network = live;
    this.save(rec);
  }

  /** docker rm --link: the parent's HostConfig.Links without the link (used at its next start). */
  saveLinks(rec: ContainerRecord, links: string[] | null): void {
    rec.hostConfig.Links = links;
    this.save(rec);
  }

  // ---- attach plumbing ----

  /** Runs `join` with the container's stdio socket now (running) or when it starts. */
  whenStdio(rec: ContainerRecord, join: (stdioSocket: string) => Promise<void>): void {
    if ((rec.state.status === "running" || rec.state.status === "paused") && rec.stdioSocket) void join(rec.stdioSocket).catch(() => {});
    else this.liveOf(rec.id).pendingAttach.push(join);
  }

  // ---- daemon start ----

  /**
   * Daemon start: finishes what a crash interrupted (creates without a record, removals),
   * reconciles records with the runtime, and applies restart policies.
   */
  async recover(): Promise<void> {
    for (const id of this.store.pendingCreates()) {
      this.log.warn("releasing the rootfs of a create that was interrupted", { id });
      await this.undoCreate(id);
    }
    for (const rec of this.store.all()) {
      if (rec.state.status !== "removing" && !(rec.state.status === "dead" && rec.removal)) continue;
      this.log.warn("finishing an interrupted removal", { id: rec.id });
      await this.remove(rec.id, { force: true, volumes: !!rec.removal?.volumes }).catch((err) => this.log.warn("interrupted removal failed again", { id: rec.id, error: err }));
    }
    const recs = this.store.all();
    const active = recs.filter((r) => isActive(r.state.status));
    if (active.length || recs.some((r) => r.runtimeHeld === true)) {
      // netd starts lazily: wake it when running containers use its networks, so their
      // embedded DNS and port reservations come back with the daemon, not on the next call.
      if (active.some((r) => (r.network?.endpoints.length ?? 0) > 0)) {
        void call(() => this.backends.networks.list({})).catch((err) => this.log.warn("netd did not start for running containers", { error: err }));
      }
      await this.monitor.ensure();
      await this.reconcile();
    }
    for (const rec of this.store.all()) {
      if (rec.state.status === "exited" && shouldRestartOnDaemonStart(rec) && !this.liveOf(rec.id).restartTimer) {
        await this.start(rec.id).catch((err) => this.log.warn("restart on daemon start failed", { id: rec.id, error: err }));
      }
    }
  }

  /**
   * Brings records in line with what the runtime reports (after a restart or a lost event
   * stream): exits that happened meanwhile are recorded, runtime containers and network
   * attachments left by an interrupted start or exit are released (the record then is a
   * plain created/exited one that starts normally), and runtime containers without a
   * record are deleted.
   */
  async reconcile(): Promise<void> {
    const res = await call(() => this.backends.machines.containerStates({ machine: HOST_MACHINE, ids: [] }));
    const byId = new Map(res.containers.map((c) => [c.id, c]));
    for (const rec of this.store.all()) {
      const rt = byId.get(rec.id);
      byId.delete(rec.id);
      const l = this.liveOf(rec.id);
      if (rec.state.status === "running" || rec.state.status === "paused") {
        if (rt && (rt.status === "running" || rt.status === "paused")) {
          rec.stdioSocket = rt.stdioSocket || rec.stdioSocket;
          this.lifecycle.apply(rec, { kind: "reconcile", status: rt.status, pid: rt.pid });
        } else {
          // Without a runtime container the exit status is lost: 255, as Docker reports it.
          this.onExit({
            type: "exit",
            containerId: rec.id,
            execId: "",
            exitCode: rt ? rt.exitCode : 255,
            timeUnixNano: rt?.finishedAtUnixNano ?? 0n,
            oomKilled: rt?.oomKilled ?? false,
          } as RuntimeEvent);
        }
      } else if (rec.state.status === "restarting" && !l.restartTimer) {
        try {
          // The restart a daemon restart lost: scheduled again, or the container stays exited.
          if (shouldRestartOnExit(rec)) this.scheduleRestart(rec);
          else this.lifecycle.apply(rec, { kind: "restart-cancelled" }, "required");
        } catch (err) {
          this.log.warn("reconcile of a restarting container", { id: rec.id, error: err });
        }
      } else if (!l.starting && !l.cleanup && rec.state.status !== "removing" && (rt || rec.runtimeHeld === true)) {
        // Left by a crash mid-start (a created record) or between exit and cleanup. The
        // record is persisted first: its exit status must not depend on the runtime's copy.
        if (!this.trySave(rec, "state before runtime release")) continue;
        if (rt?.status === "running" || rt?.status === "paused") this.log.warn("stopping a runtime container its record does not run", { id: rec.id, status: rec.state.status });
        await this.lock.run(rec.id, async () => {
          // Re-checked under the lock: a start or removal may have run while we waited.
          if (l.starting || !this.store.get(rec.id) || isActive(rec.state.status) || rec.state.status === "removing") return;
          if (await this.releaseRuntimeObjects(rec, true, true)) rec.runtimeHeld = false;
          rec.network = null;
          rec.stdioSocket = "";
          this.trySave(rec, "runtime release");
        });
      }
    }
    // Runtime containers with no record at all (a record removed while the runtime was out of reach).
    for (const orphan of byId.keys()) {
      if (this.store.get(orphan)) continue;
      this.log.warn("deleting a runtime container that has no record", { id: orphan });
      await Promise.allSettled([
        callIdempotent(() => this.backends.machines.deleteContainer({ machine: HOST_MACHINE, id: orphan, force: true })),
        callIdempotent(() => this.backends.networks.detach({ containerId: orphan })),
      ]);
    }
  }

  counts() {
    let running = 0,
      paused = 0,
      stopped = 0;
    const all = this.store.all();
    for (const r of all) {
      if (r.state.status === "running" || r.state.status === "restarting") running++;
      else if (r.state.status === "paused") paused++;
      else stopped++;
    }
    return { total: all.length, running, paused, stopped };
  }

  async shutdown(): Promise<void> {
    this.monitor.stop();
    for (const l of this.live.values()) if (l.restartTimer) clearTimeout(l.restartTimer);
  }
}
