/**
 * VM machines: records (MachineStore), their state machine (machine-state.ts), root
 * disks from images, and the VMs themselves through a VmBackend. One lock per machine
 * serialises its lifecycle operations; a VM's exit, whenever it comes, is recorded
 * with its reason. On start, VMs left running by an earlier vmm are adopted. A machine's
 * mounts are served by fsd (MachineShares) from before qemu starts until after it exits.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { KeyedLock } from "../../../guest/core/keyed-lock.ts";
import type { Logger } from "../../../lib/log.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { VmBackend, VmExit, VmHandle } from "../backend/backend.ts";
import type { GuestBoot } from "../platform/guest-boot.ts";
import { buildRootDisk, type RootfsLayers } from "../platform/root-disk.ts";
import { QUICK_CALL_TIMEOUT_MS, type AgentClient, type IoFrame } from "./agent-client.ts";
import { MachineError } from "./machine-error.ts";
import { DEFAULTS, createSpecSchema, type CreateSpec, type MachineRecord } from "./machine-model.ts";
import { addMounts, checkGuestDir, type MachineMount, type MountRequest } from "./machine-mounts.ts";
import type { MachineShares, RunningShare } from "./machine-shares.ts";
import type { MachineNetwork } from "./machine-network.ts";
import { assertTransition, hasProcess, type MachineState } from "./machine-state.ts";
import { connectVmAgent } from "./vm-agent-link.ts";
import type { MachineStore } from "../storage/machine-store.ts";

const AGENT_BOOT_TIMEOUT_MS = Number(process.env.ARCBOX_MACHINE_BOOT_TIMEOUT_MS ?? 120_000);
const DEFAULT_STOP_TIMEOUT_S = 20;
/** Adopting a running VM: its agent is up, so a session gets a few seconds to answer. */
const ADOPT_AGENT_TIMEOUT_MS = 30_000;
const RESYNC_AFTER_MS = 4_000;
/** Between attempts to get a session with an agent that stopped answering. */
const RELINK_PAUSE_MS = 5_000;

/** What vmm asks imaged for (a subset of ImageService). */
export interface RootfsSource {
  prepareRootfs(req: { image: string; containerId: string }): Promise<RootfsLayers & { imageId: string }>;
  releaseRootfs(req: { containerId: string }): Promise<unknown>;
}

export interface VmMachinesDeps {
  machinesDir: string;
  store: MachineStore;
  backend: VmBackend;
  boot: () => GuestBoot;
  images: RootfsSource;
  network: MachineNetwork;
  shares: MachineShares;
  log: Logger;
  onEvent?: (machine: string, e: RuntimeEvent) => void;
  /** Exec stdio frames from a machine's agent. */
  onIo?: (machine: string, f: IoFrame) => void;
  /** The machine's VM is gone (whatever the reason). */
  onStopped?: (machine: string) => void;
  /** A session with the machine's agent is up (start, adoption). */
  onAgentUp?: (machine: string) => void;
  /** The agent session of a running machine was dropped (it stopped answering): what ran over it is lost. */
  onAgentLost?: (machine: string) => void;
}

interface Live {
  vm: VmHandle;
  agent?: AgentClient;
  /** Set while a stop is under way: the exit then counts as requested. */
  stopRequested?: boolean;
  /** fsd serves shares for this VM: stop them once it has exited. */
  shared?: boolean;
}

export type CreateInput = Partial<Omit<CreateSpec, "mounts">> & {
  name: string;
  noStart?: boolean;
  mounts?: MountRequest[];
  /** Makes the root disk itself instead of from an image (the engine machine's minimal root). */
  buildDisk?: (diskPath: string, sizeGib: number) => Promise<void>;
};

export class VmMachines {
  private readonly lock = new KeyedLock();
  private readonly live = new Map<string, Live>();
  private readonly creating = new Set<string>();
  private readonly exitWaiters = new Map<string, Set<() => void>>();
  /** Share stops under way per machine: a start waits for them (never races a stop). */
  private readonly shareStops = new Map<string, Promise<void>>();

  constructor(private readonly d: VmMachinesDeps) {
    mkdirSync(d.machinesDir, { recursive: true, mode: 0o700 });
  }

  dir(name: string): string {
    return join(this.d.machinesDir, name);
  }

  list(): MachineRecord[] {
    return this.d.store.all();
  }

  get(name: string): MachineRecord {
    const m = this.d.store.get(name);
    if (!m) throw new MachineError("not_found", `no such machine: ${name}`);
    return m;
  }

  /** Whether any VM process runs (or may): vmm must stay up to watch it. */
  get anyRunning(): boolean {
    return this.live.size > 0 || this.creating.size > 0 || this.d.store.all().some((m) => hasProcess(m.state));
  }

  /** The connected agent of a running machine. */
  agent(name: string): AgentClient {
    const m = this.get(name);
    const live = this.live.get(name);
    const a = live?.agent;
    if (m.state === "running" && live && !a?.isOpen) throw new MachineError("unavailable", `the guest agent of machine ${name} is not connected (vmm is reconnecting to it)`);
    if (m.state !== "running" || !a?.isOpen) throw new MachineError("conflict", `machine ${name} is not running (it is ${m.state})`);
    return a;
  }

  /** The machine's agent if a session is up, whatever the machine's state. */
  connectedAgent(name: string): AgentClient | undefined {
    const a = this.live.get(name)?.agent;
    return a?.isOpen ? a : undefined;
  }

  /**
   * Adopts VMs an earlier vmm left running and settles records whose VM is gone.
   * Leftover directories without a record (an interrupted create) are removed.
   */
  async recover(): Promise<void> {
    const names = new Set(this.d.store.all().map((m) => m.name));
    for (const entry of readdirSync(this.d.machinesDir)) {
      if (!names.has(entry)) rmSync(join(this.d.machinesDir, entry), { recursive: true, force: true });
    }
    await Promise.all(
      this.d.store.all().map((m) =>
        this.lock.run(m.name, async () => {
          if (m.state === "removing") return this.finishRemove(m);
          if (!hasProcess(m.state)) return;
          const vm = await this.d.backend.adopt(m.name, this.dir(m.name)).catch(() => undefined);
          if (!vm) {
            this.update(m.name, { state: "stopped", pid: 0, stoppedMs: Date.now(), stopReason: "crashed: the VM exited while vmm was not running" });
            if (m.mounts.length) await this.stopShares(m.name);
            // Mounts removed while it ran may have left servers: a start without mounts
            // does not ask fsd (MachineShares.start), so stop them here, off the ready path.
            else void this.stopShares(m.name);
            return;
          }
          // Its shares are still served (fsd's servers outlive fsd and vmm): leave them be.
          this.watch(m.name, vm, m.mounts.length > 0);
          if (m.state === "stopping") {
            // The earlier vmm was stopping it: finish the job.
            this.live.get(m.name)!.stopRequested = true;
            await vm.kill();
            await this.exitRecorded(m.name);
            return;
          }
          // netd is lazy: after a daemon restart this brings the machine's DHCP and DNS back.
          // Not awaited: vmm's readiness must not wait for netd, whose own start may wait
          // for vmm (in VM mode it rebuilds its datapath in the engine machine through vmm).
          void this.d.network.attach(m.name).catch((err) => this.d.log.warn("adopted VM: network attach failed", { machine: m.name, error: err }));
          await this.attachAgent(m.name, vm, true).catch((err) => this.d.log.warn("adopted VM: agent not reachable", { machine: m.name, error: err }));
          if (this.get(m.name).state === "starting") this.update(m.name, { state: "running" });
          this.d.log.info("re-adopted machine", { machine: m.name, pid: vm.pid });
        }),
      ),
    );
  }

  async create(input: CreateInput): Promise<MachineRecord> {
    const parsed = createSpecSchema.safeParse({
      name: input.name,
      image: input.image || DEFAULTS.image,
      cpus: input.cpus || DEFAULTS.cpus,
      memoryMib: input.memoryMib || DEFAULTS.memoryMib,
      diskGib: input.diskGib || DEFAULTS.diskGib,
      // Checked here (paths exist, no duplicates), before any work is done.
      mounts: addMounts([], input.mounts ?? []),
    });
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new MachineError("invalid_argument", issue.message);
    }
    const spec = parsed.data;
    if (this.creating.has(spec.name) || this.d.store.get(spec.name)) throw new MachineError("already_exists", `machine ${spec.name} already exists`);
    // Fail before any work when the guest files are missing.
    this.d.boot();
    this.creating.add(spec.name);
    const dir = this.dir(spec.name);
    const owner = `machine-build.${spec.name}`;
    let prepared = false;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (input.buildDisk) {
        await input.buildDisk(join(dir, "disk.img"), spec.diskGib);
        this.insertCreated(spec, "");
      } else {
        const layers = await this.d.images.prepareRootfs({ image: spec.image, containerId: owner }).catch((err: MachineError) => {
          if (err.code === "not_found") throw new MachineError("not_found", `image ${spec.image} is not present locally (pull or load it first): ${err.message}`);
          throw err;
        });
        prepared = true;
        const started = performance.now();
        await buildRootDisk(layers, join(dir, "disk.img"), spec.diskGib, join(dir, "rootfs.mnt"));
        this.d.log.info("made the machine's disk", { machine: spec.name, image: spec.image, gib: spec.diskGib, ms: Math.round(performance.now() - started) });
        this.insertCreated(spec, layers.imageId);
      }
    } catch (err) {
      this.creating.delete(spec.name);
      rmSync(dir, { recursive: true, force: true });
      throw err;
    } finally {
      if (prepared) await this.d.images.releaseRootfs({ containerId: owner }).catch((e) => this.d.log.warn("release of the build snapshot failed", { owner, error: e }));
    }
    if (input.noStart) return this.get(spec.name);
    return this.start(spec.name);
  }

  private insertCreated(spec: CreateSpec, imageId: string): void {
    const record: MachineRecord = {
      ...spec,
      imageId,
      state: "created",
      backend: this.d.backend.name,
      accel: "",
      accelNote: "",
      pid: 0,
      mac: "",
      ip: "",
      createdMs: Date.now(),
      startedMs: 0,
      stoppedMs: 0,
      stopReason: "",
    };
    if (!this.d.store.insert(record)) throw new MachineError("already_exists", `machine ${spec.name} already exists`);
    this.creating.delete(spec.name);
  }

  /** `bootTimeoutMs`: how long the guest agent may take to answer (default ARCBOX_MACHINE_BOOT_TIMEOUT_MS). */
  start(name: string, opts: { bootTimeoutMs?: number } = {}): Promise<MachineRecord> {
    return this.lock.run(name, () => this.startLocked(name, opts.bootTimeoutMs));
  }

  stop(name: string, timeoutS = DEFAULT_STOP_TIMEOUT_S): Promise<MachineRecord> {
    return this.lock.run(name, () => this.stopLocked(name, timeoutS));
  }

  restart(name: string, timeoutS = DEFAULT_STOP_TIMEOUT_S): Promise<MachineRecord> {
    return this.lock.run(name, async () => {
      if (this.get(name).state === "running") await this.stopLocked(name, timeoutS);
      return this.startLocked(name);
    });
  }

  remove(name: string, force: boolean): Promise<void> {
    return this.lock.run(name, async () => {
      let m = this.get(name);
      if (hasProcess(m.state)) {
        if (!force) throw new MachineError("conflict", `machine ${name} is ${m.state}: stop it first or remove it with -f`);
        const live = this.live.get(name);
        if (live) {
          live.stopRequested = true;
          await live.vm.kill();
          await this.exitRecorded(name);
        }
        m = this.get(name);
      }
      assertTransition(name, m.state, "removing");
      this.update(name, { state: "removing" });
      await this.finishRemove(this.get(name));
    });
  }

  /**
   * Adds a mount to the machine's definition (from its next start). Not under the
   * machine's lock: a boot in progress need not finish first; the record is read and
   * written without a pause in between, and the start path re-reads it.
   */
  addMount(name: string, req: MountRequest): MachineRecord {
    const m = this.get(name);
    if (m.state === "removing") throw new MachineError("conflict", `machine ${name} is being removed`);
    this.update(name, { mounts: addMounts(m.mounts, [req]) });
    this.d.log.info("mount added", { machine: name, hostDir: req.hostDir, guestDir: req.guestDir });
    return this.get(name);
  }

  /** Removes the mount at `guestDir` from the machine's definition (from its next start). */
  removeMount(name: string, guestDir: string): MachineRecord {
    const m = this.get(name);
    if (m.state === "removing") throw new MachineError("conflict", `machine ${name} is being removed`);
    const dir = checkGuestDir(guestDir);
    if (!m.mounts.some((x) => x.guestDir === dir)) throw new MachineError("not_found", `machine ${name} has no mount at ${dir}`);
    this.update(name, { mounts: m.mounts.filter((x) => x.guestDir !== dir) });
    this.d.log.info("mount removed", { machine: name, guestDir: dir });
    return this.get(name);
  }

  mounts(name: string): MachineMount[] {
    return this.get(name).mounts;
  }

  /** Resolves once the VM of `name` has exited and its record says so. */
  waitExit(name: string): Promise<void> {
    if (!this.live.has(name)) return Promise.resolve();
    return new Promise((resolve) => {
      let set = this.exitWaiters.get(name);
      if (!set) this.exitWaiters.set(name, (set = new Set()));
      set.add(resolve);
    });
  }

  /** Lets go of every VM without stopping it (vmm exits; the next vmm adopts them). */
  release(): void {
    for (const l of this.live.values()) {
      l.agent?.close();
      l.vm.release();
    }
    this.live.clear();
  }

  private async startLocked(name: string, bootTimeoutMs = AGENT_BOOT_TIMEOUT_MS): Promise<MachineRecord> {
    const m = this.get(name);
    if (m.state === "running" || m.state === "starting") return m;
    assertTransition(name, m.state, "starting");
    const boot = this.d.boot();
    this.update(name, { state: "starting", stopReason: "" });
    let vm: VmHandle | undefined;
    // Parents before children: a share inside another share's guest dir mounts on top.
    const mounts = [...m.mounts].sort((a, b) => a.guestDir.split("/").length - b.guestDir.split("/").length);
    let shares: RunningShare[] = [];
    try {
      // Independent steps, side by side: the first start after a daemon start activates
      // netd (and fsd for a machine with mounts), a first start ever probes the
      // accelerator. All settle before going on, so a failure never leaves one running.
      const began = performance.now();
      const timed = <T>(p: Promise<T>) => p.then((v) => ({ v, ms: Math.round(performance.now() - began) }));
      const settled = await Promise.allSettled([
        timed(this.d.network.attach(name)),
        timed((this.shareStops.get(name) ?? Promise.resolve()).then(() => this.d.shares.start(name, mounts))),
        timed(this.d.backend.prepare?.() ?? Promise.resolve()),
      ] as const);
      const [net, shared, accel] = settled;
      if (shared.status === "fulfilled") shares = shared.value.v;
      const failed = settled.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      const nic = net.status === "fulfilled" ? net.value.v : undefined;
      const ms = (r: PromiseSettledResult<{ ms: number }>) => (r.status === "fulfilled" ? r.value.ms : -1);
      this.d.log.info("machine prepared", { machine: name, networkMs: ms(net), sharesMs: ms(shared), acceleratorMs: ms(accel) });
      vm = await this.d.backend.start({
        name,
        dir: this.dir(name),
        cpus: m.cpus,
        memoryMib: m.memoryMib,
        rootDisk: join(this.dir(name), "disk.img"),
        toolsDisk: boot.tools,
        kernel: boot.kernel,
        initrd: boot.initrd,
        cmdline: boot.cmdline(name, [...mounts, ...(this.d.shares.bootMounts?.(name) ?? [])]),
        net: nic ? { tap: nic.tap, mac: nic.mac } : undefined,
        shares,
      });
      this.update(name, { pid: vm.pid, accel: vm.accel.accel, accelNote: vm.accel.note, startedMs: Date.now(), mac: nic?.mac ?? "", ip: nic?.ip ?? "" });
      this.watch(name, vm, shares.length > 0);
      await this.attachAgent(name, vm, false, bootTimeoutMs);
    } catch (err) {
      if (vm) {
        const live = this.live.get(name);
        if (live) live.stopRequested = true;
        await vm.kill();
        await this.exitRecorded(name);
        this.update(name, { stopReason: `crashed: ${(err as Error).message} (see machine logs)` });
      } else {
        this.update(name, { state: "stopped", pid: 0, stoppedMs: Date.now(), stopReason: `crashed: ${(err as Error).message}` });
        if (mounts.length || shares.length) await this.stopShares(name);
      }
      throw err;
    }
    this.update(name, { state: "running" });
    this.d.log.info("machine running", { machine: name, pid: vm.pid, accel: vm.accel.accel });
    return this.get(name);
  }

  private async stopLocked(name: string, timeoutS: number): Promise<MachineRecord> {
    const m = this.get(name);
    if (m.state === "stopped" || m.state === "created") return m;
    assertTransition(name, m.state, "stopping");
    const live = this.live.get(name);
    if (!live) {
      this.update(name, { state: "stopped", pid: 0, stoppedMs: Date.now() });
      return this.get(name);
    }
    this.update(name, { state: "stopping" });
    live.stopRequested = true;
    const exited = this.exitRecorded(name);
    // A clean shutdown by the agent when it answers; ACPI power button otherwise.
    const asked = live.agent?.isOpen
      ? live.agent.call("poweroff", { machine: name }, { timeoutMs: Math.min(QUICK_CALL_TIMEOUT_MS, timeoutS * 1000) }).catch(() => live.vm.powerdown())
      : live.vm.powerdown();
    await asked.catch((err) => this.d.log.warn("poweroff request failed", { machine: name, error: err }));
    const inTime = await Promise.race([exited.then(() => true), Bun.sleep(timeoutS * 1000).then(() => false)]);
    if (!inTime) {
      this.d.log.warn("machine did not power off in time; killing it", { machine: name, timeoutS });
      await live.vm.kill();
      await exited;
    }
    return this.get(name);
  }

  private exitRecorded(name: string): Promise<void> {
    return this.waitExit(name);
  }

  private watch(name: string, vm: VmHandle, shared: boolean): void {
    this.live.set(name, { vm, shared });
    void vm.exited.then((exit) => this.onExit(name, vm, exit));
  }

  /** `adopted`: the agent is up already, so a session that does not answer is retried. */
  private async attachAgent(name: string, vm: VmHandle, adopted = false, bootTimeoutMs = AGENT_BOOT_TIMEOUT_MS): Promise<void> {
    const agent = await connectVmAgent({
      socket: vm.agentSocket,
      timeoutMs: adopted ? ADOPT_AGENT_TIMEOUT_MS : bootTimeoutMs,
      resyncAfterMs: adopted ? RESYNC_AFTER_MS : undefined,
      onEvent: (e) => this.d.onEvent?.(name, e),
      onClose: () => {
        const l = this.live.get(name);
        if (l?.agent === agent) l.agent = undefined;
      },
      abandon: vm.exited,
    });
    agent.onIo = (f) => this.d.onIo?.(name, f);
    agent.onStalled = () => void this.relink(name, vm, agent);
    const l = this.live.get(name);
    if (l?.vm !== vm) return agent.close();
    l.agent = agent;
    this.d.onAgentUp?.(name);
  }

  /**
   * The agent stopped answering (e.g. it died in the guest and stage 2 restarted it: the
   * old session then talks to nobody). Drop the session and open a new one (SYNC), in the
   * background; calls meanwhile fail with "not connected" instead of hanging.
   */
  private async relink(name: string, vm: VmHandle, stale: AgentClient): Promise<void> {
    const l = this.live.get(name);
    if (l?.vm !== vm || l.agent !== stale || l.stopRequested) return;
    l.agent = undefined;
    stale.close();
    this.d.log.warn("guest agent not answering; reconnecting", { machine: name });
    this.d.onAgentLost?.(name);
    while (this.live.get(name)?.vm === vm && !this.live.get(name)?.stopRequested) {
      try {
        await this.attachAgent(name, vm, true);
        this.d.log.info("guest agent reconnected", { machine: name });
        return;
      } catch (err) {
        this.d.log.warn("guest agent still not answering", { machine: name, error: err });
      }
      await Promise.race([vm.exited, Bun.sleep(RELINK_PAUSE_MS)]);
    }
  }

  private onExit(name: string, vm: VmHandle, exit: VmExit): void {
    const l = this.live.get(name);
    if (l?.vm !== vm) return;
    this.live.delete(name);
    l.agent?.close();
    const m = this.d.store.get(name);
    if (m && m.state !== "removing") {
      // A requested stop that ended in a kill is "killed"; the guest powering off is "poweroff".
      // The agent's poweroff may end in a reset (its `reboot -f` fallback): still a poweroff.
      const reason = l.stopRequested && exit.kind === "crashed" && /reset/.test(exit.detail) ? "poweroff" : exit.kind === "crashed" ? `crashed: ${exit.detail}` : exit.kind;
      this.update(name, { state: "stopped", pid: 0, stoppedMs: Date.now(), stopReason: reason });
      const level = exit.kind === "crashed" && !l.stopRequested ? "warn" : "info";
      this.d.log[level]("machine stopped", { machine: name, reason });
    }
    this.d.onStopped?.(name);
    // Waiters (stop, restart, rm) resume once the machine's share servers are gone too.
    const sharesGone = l.shared || m?.mounts.length ? this.stopShares(name) : Promise.resolve();
    void sharesGone.then(() => {
      const waiters = this.exitWaiters.get(name);
      this.exitWaiters.delete(name);
      for (const w of waiters ?? []) w();
    });
  }

  /** Stops the machine's share servers (after its VM exited); never rejects. */
  private stopShares(name: string): Promise<void> {
    const p = (this.shareStops.get(name) ?? Promise.resolve())
      .then(() => this.d.shares.stop(name))
      .catch((err) => this.d.log.warn("stopping the machine's shares failed", { machine: name, error: err }));
    this.shareStops.set(name, p);
    void p.then(() => {
      if (this.shareStops.get(name) === p) this.shareStops.delete(name);
    });
    return p;
  }

  private async finishRemove(m: MachineRecord): Promise<void> {
    if (m.mounts.length) await this.stopShares(m.name);
    await this.d.network.detach(m.name).catch((err) => this.d.log.warn("network detach failed", { machine: m.name, error: err }));
    rmSync(this.dir(m.name), { recursive: true, force: true });
    this.d.store.delete(m.name);
    this.d.log.info("removed machine", { machine: m.name });
  }

  private update(name: string, patch: Partial<MachineRecord> & { state?: MachineState }): void {
    const m = this.get(name);
    if (patch.state && patch.state !== m.state) assertTransition(name, m.state, patch.state);
    this.d.store.put({ ...m, ...patch });
  }

  /** Whether the disk of a machine exists (for inspect). */
  hasDisk(name: string): boolean {
    return existsSync(join(this.dir(name), "disk.img"));
  }
}
