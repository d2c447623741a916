/**
 * VM mode (issue 13): the engine machine, a VM machine with a reserved name that runs
 * every container. vmm creates it (a minimal disk: everything runs from the tools
 * image) and boots it at its own start, and again on the next container call after it
 * stopped. Its VirtioFS shares (imaged's layers, apid's container dirs, the host's root)
 * are on its kernel command line, so the guest mounts them during boot where the agent
 * expects them (guest/vm/engine-layout.ts), before the agent answers: the engine is
 * ready when its agent is.
 *
 * MachineService calls for it go through `call`: host paths in the request become the
 * machine's (engine-paths.ts), stdio sockets in answers are served on the host
 * (engine-stdio.ts), and its runtime events go to apid like the host agent's.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import type { Logger } from "../../../lib/log.ts";
import { create } from "@bufbuild/protobuf";
import { RuntimeEventSchema, type RuntimeEvent, type VolumeOpRequest } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { GuestMount } from "../../../guest/boot/mounts-arg.ts";
import { ENGINE_SHARES, shareHostDir } from "../../../guest/vm/engine-layout.ts";
import { buildEngineDisk } from "../platform/engine-disk.ts";
import type { AgentClient, AgentMethod, IoFrame } from "./agent-client.ts";
import { EnginePaths } from "./engine-paths.ts";
import { EngineFiles } from "./engine-files.ts";
import { EngineLeftovers } from "./engine-leftovers.ts";
import { EngineStdio } from "./engine-stdio.ts";
import { MachineError } from "./machine-error.ts";
import type { VmMachines } from "./vm-machines.ts";

/** The engine machine's size (created once; `arcbox machine inspect arcbox-engine` shows it). */
const ENGINE_SPEC = {
  cpus: Number(process.env.ARCBOX_ENGINE_CPUS ?? 2),
  memoryMib: Number(process.env.ARCBOX_ENGINE_MEMORY_MIB ?? 2048),
  diskGib: Number(process.env.ARCBOX_ENGINE_DISK_GIB ?? 64),
};
/**
 * The engine's boot may take long (TCG on a loaded host: minutes): giving up would only
 * kill it and boot again, while every container call waits for it either way.
 */
const ENGINE_BOOT_TIMEOUT_MS = Number(process.env.ARCBOX_ENGINE_BOOT_TIMEOUT_MS ?? 600_000);
/** Exit code of a container whose machine went away. */
const MACHINE_GONE_EXIT = 255;

/** What vmm asks fsd for (ShareService). */
export interface ShareServer {
  startShare(req: { machine: string; tag: string; hostDir: string; readOnly: boolean; cacheMode: string }): Promise<{ socketPath: string }>;
  stopShare(req: { machine: string; tag: string }): Promise<unknown>;
}

export interface EngineMachineDeps {
  homeRoot: string;
  runDir: string;
  vms: VmMachines;
  shares: () => ShareServer;
  /** Where the engine's runtime events go (apid's Events stream). */
  publish: (e: RuntimeEvent) => void;
  log: Logger;
}

export class EngineMachine {
  readonly name = ENGINE_MACHINE;
  readonly paths: EnginePaths;
  readonly stdio: EngineStdio;
  readonly files: EngineFiles;
  /** Removals the machine missed while it was not running (done at its next boot). */
  private readonly leftovers: EngineLeftovers;
  private readying: Promise<AgentClient> | undefined;
  /** The agent connection the stdio streams run over. */
  private linkedTo: AgentClient | undefined;
  /** Containers whose process may be alive in the machine (from starts, exits and ContainerStates). */
  private readonly running = new Set<string>();

  constructor(private readonly d: EngineMachineDeps) {
    this.paths = new EnginePaths(d.homeRoot);
    this.stdio = new EngineStdio(d.runDir, () => this.ready(), d.log);
    this.files = new EngineFiles(
      d.runDir,
      this.paths,
      () => this.ready(),
      d.log,
      () => this.agentIfUp(),
      (id) => this.leftovers.add(id, "discard"),
    );
    this.leftovers = new EngineLeftovers(join(d.homeRoot, "data", "vmm", "engine-leftovers"));
  }

  /** The agent when the machine is running or coming up; undefined (and no boot) otherwise. */
  private agentIfUp(): Promise<AgentClient | undefined> {
    if (this.readying) return this.readying;
    const state = this.d.vms.list().find((m) => m.name === this.name)?.state;
    return state === "running" || state === "starting" ? this.ready() : Promise.resolve(undefined);
  }

  /** The engine machine's agent, after creating, booting and setting it up as needed. */
  ready(): Promise<AgentClient> {
    this.readying ??= this.bringUp().finally(() => (this.readying = undefined));
    return this.readying;
  }

  private async bringUp(): Promise<AgentClient> {
    const vms = this.d.vms;
    const existing = vms.list().find((m) => m.name === this.name);
    if (!existing) {
      const started = performance.now();
      await vms.create({ name: this.name, image: "none", ...ENGINE_SPEC, noStart: true, buildDisk: buildEngineDisk });
      this.d.log.info("created the engine machine", { ms: Math.round(performance.now() - started) });
    }
    const state = vms.get(this.name).state;
    if (state !== "running") {
      const started = performance.now();
      if (state === "stopping") await vms.waitExit(this.name);
      await vms.start(this.name, { bootTimeoutMs: ENGINE_BOOT_TIMEOUT_MS });
      this.d.log.info("engine machine booted", { ms: Math.round(performance.now() - started) });
    }
    const agent = vms.agent(this.name);
    if (this.linkedTo !== agent) {
      if (this.linkedTo) {
        this.stdio.agentGone(this.linkedTo);
        this.files.agentGone(this.linkedTo);
      }
      this.linkedTo = agent;
      // Before this boot's other calls: a create must not race a deferred delete (a
      // delete also releases the layer mounts no overlay lists yet).
      await this.cleanLeftovers(agent);
    }
    return agent;
  }

  /**
   * Deletes and discards that came while the machine was down (`docker rm` of an exited
   * container, the runtime delete after the machine died): done on its disk now. Best
   * effort: what fails is logged and dropped (only disk space in the machine).
   */
  private async cleanLeftovers(agent: AgentClient): Promise<void> {
    for (const { id, kind } of this.leftovers.list()) {
      try {
        if (kind === "volume") await agent.call("volumeOp", { op: "remove", names: [id] } as never);
        else if (kind === "delete") await agent.call("deleteContainer", { id, force: true } as never).catch((err: MachineError) => (err.code === "not_found" ? undefined : Promise.reject(err)));
        else {
          const code = await this.files.runOp(agent, { op: "discard", id });
          if (code !== 0) throw new Error(`exit ${code}`);
        }
      } catch (err) {
        this.d.log.warn("could not clean a removed container's or volume's leftovers in the engine machine", { id, kind, error: err });
      }
      this.leftovers.done(id, kind);
    }
  }

  /** The shares the guest mounts during boot (native/init/machine-setup.c), before its agent answers. */
  bootMounts(): GuestMount[] {
    return ENGINE_SHARES.map((s) => ({ tag: s.tag, guestDir: s.guestDir, readOnly: s.readOnly }));
  }

  /**
   * VmMachines' share hooks: the engine machine's VirtioFS shares, started before qemu
   * and stopped after it exited. A share server serves one qemu, so each boot gets fresh
   * ones; the operations are chained, so the stop after a crash never lands on the
   * next boot's servers.
   */
  startShares(machine: string): Promise<{ tag: string; socket: string }[]> {
    if (machine !== this.name) return Promise.resolve([]);
    return this.sharesOp(async () => {
      await this.d.shares().stopShare({ machine, tag: "" });
      const out: { tag: string; socket: string }[] = [];
      for (const s of ENGINE_SHARES) {
        const hostDir = shareHostDir(s, this.d.homeRoot);
        // The owners (imaged, apid) may not have run yet: the directory must exist to be shared.
        mkdirSync(hostDir, { recursive: true, mode: 0o711 });
        const r = await this.d.shares().startShare({ machine, tag: s.tag, hostDir, readOnly: s.readOnly, cacheMode: "auto" });
        out.push({ tag: s.tag, socket: r.socketPath });
      }
      return out;
    });
  }

  stopShares(machine: string): Promise<void> {
    if (machine !== this.name) return Promise.resolve();
    return this.sharesOp(async () => void (await this.d.shares().stopShare({ machine, tag: "" })));
  }

  private sharesChain: Promise<unknown> = Promise.resolve();
  private sharesOp<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.sharesChain.then(fn, fn);
    this.sharesChain = next.catch(() => {});
    return next;
  }

  /**
   * The engine machine's VM is gone: its streams end, and every container that was
   * running in it is reported as exited at once (255, as the agent reports a container
   * whose processes vanished), so apid records the exits and removes --rm containers.
   * The next call boots the machine again; its agent then finds those containers dead.
   */
  machineGone(): void {
    if (this.linkedTo) {
      this.stdio.agentGone(this.linkedTo);
      this.files.agentGone(this.linkedTo);
    }
    this.linkedTo = undefined;
    // No time: the container's start time comes from the guest's clock, which may run
    // ahead of ours, and apid ignores an exit stamped before the start it recorded (a
    // stale exit). Without a time, apid records the exit as of now.
    for (const containerId of this.running) this.d.publish(create(RuntimeEventSchema, { type: "exit", containerId, exitCode: MACHINE_GONE_EXIT, timeUnixNano: 0n }));
    if (this.running.size) this.d.log.warn("the engine machine stopped under running containers; reported them as exited", { containers: this.running.size });
    this.running.clear();
  }

  /** Events of the engine machine's agent; false for a machine exec's (`arcbox machine exec`). */
  onEvent(e: RuntimeEvent): boolean {
    if (e.type === "machine_exec_exit") return false;
    if (e.type === "exec_exit") this.stdio.execExited(e.execId);
    if (e.type === "start") this.running.add(e.containerId);
    if (e.type === "exit") this.running.delete(e.containerId);
    this.d.publish(e);
    return true;
  }

  /** io frames of a stdio stream; false for a machine exec's. */
  onIo(f: IoFrame): boolean {
    return this.stdio.onIo(f) || this.files.onIo(f);
  }

  /** A MachineService call for the engine machine, with its paths and sockets translated. */
  async call(method: AgentMethod, req: never): Promise<unknown> {
    // Asked by `docker info` and after `docker rmi`: never boots the machine to answer
    // (a machine that is not up has no runtime to report and no layer mounted).
    if ((method === "agentInfo" || method === "releaseLayers") && !this.linkedTo) return {};
    if (method === "deleteContainer") {
      // Never boots the machine: a container that exited (or died with the machine) has
      // nothing running there; its runtime state on the machine's disk is deleted at the
      // next boot, before any other call.
      const agent = await this.agentIfUp();
      if (!agent) {
        const id = (req as { id: string }).id;
        this.leftovers.add(id, "delete");
        this.running.delete(id);
        return {};
      }
    }
    const started = performance.now();
    try {
      if (method === "networkCommands") return await this.networkCommands(req);
      if (method === "volumeOp") return await this.volumeOp(req as unknown as VolumeOpRequest);
      return await this.callAgent(await this.ready(), method, req);
    } finally {
      this.d.log.debug("engine call", { method, ms: Math.round(performance.now() - started) });
    }
  }

  /**
   * netd's datapath commands run on the machine as it is: they never boot it. netd
   * holds its lock while they run, and a boot needs netd (AttachMachine) first; apid
   * readies the machine before it asks netd to attach a container. A machine that is
   * not up has no namespaces or links to remove either (netd ignores this error then).
   */
  private networkCommands(req: never): Promise<unknown> {
    // The running machine's agent, even before a container call linked it: after a
    // daemon restart netd rebuilds its datapath before any container call comes.
    let agent: AgentClient | undefined = this.linkedTo;
    if (!agent?.isOpen) agent = this.d.vms.list().some((m) => m.name === this.name) ? this.runningAgent() : undefined;
    if (!agent?.isOpen) throw new MachineError("failed_precondition", "the engine machine is not running");
    return agent.call("networkCommands", req);
  }

  /**
   * fsd's volume data operations. "prepare" (a container is about to use the volume)
   * boots the machine like any container call; "remove" and "sizes" never do: a removal
   * waits for the next boot (leftovers, before any other call, so a volume created again
   * under the same name is prepared after it), and sizes are unknown (-1) meanwhile.
   */
  private async volumeOp(req: VolumeOpRequest): Promise<unknown> {
    if (req.op === "prepare") return (await this.ready()).call("volumeOp", { ...req, lowerDirs: this.paths.lowerDirs(req.lowerDirs) } as never);
    const agent = await this.agentIfUp();
    if (agent) return agent.call("volumeOp", req as never);
    if (req.op === "remove") for (const name of req.names) this.leftovers.add(name, "volume");
    return { sizes: req.names.map(() => -1n), path: "" };
  }

  private runningAgent(): AgentClient | undefined {
    try {
      return this.d.vms.agent(this.name);
    } catch {
      return undefined; // not running, or its agent not connected
    }
  }

  private async callAgent(agent: AgentClient, method: AgentMethod, req: never): Promise<unknown> {
    switch (method) {
      case "createContainer": {
        const r = req as Parameters<AgentClient["call"]>[1] & { id: string };
        const res = await agent.call("createContainer", this.paths.translateCreate(r as never));
        return { ...res, stdioSocket: await this.stdio.expose(r.id, res.stdioSocket) };
      }
      case "startExec": {
        const r = req as { execId: string; containerId: string };
        const res = await agent.call("startExec", req);
        return { ...res, stdioSocket: await this.stdio.expose(r.execId, res.stdioSocket, r.containerId) };
      }
      case "containerStates": {
        const res = await agent.call("containerStates", req);
        for (const c of res.containers) {
          if (c.stdioSocket) c.stdioSocket = await this.stdio.expose(c.id, c.stdioSocket);
          if (c.status === "running" || c.status === "paused") this.running.add(c.id);
          else this.running.delete(c.id);
        }
        return res;
      }
      case "deleteContainer": {
        const res = await agent.call("deleteContainer", req);
        this.stdio.close((req as { id: string }).id);
        this.running.delete((req as { id: string }).id);
        return res;
      }
      case "startContainer": {
        const res = await agent.call("startContainer", req);
        this.running.add((req as { id: string }).id);
        return res;
      }
      default:
        return agent.call(method, req);
    }
  }
}
