/**
 * VM mode (issue 13): the engine machine, a VM machine with a reserved name that runs
 * every container. vmm creates it (a minimal disk: everything runs from the tools
 * image) and boots it at its own start, and again on the next container call after it
 * stopped. Each time its agent connects, a set-up exec loads the modules the engine
 * needs and mounts the VirtioFS shares (imaged's layers, apid's container dirs) where
 * the agent expects them (guest/vm/engine-layout.ts).
 *
 * MachineService calls for it go through `call`: host paths in the request become the
 * machine's (engine-paths.ts), stdio sockets in answers are served on the host
 * (engine-stdio.ts), and its runtime events go to apid like the host agent's.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import type { Logger } from "../../../lib/log.ts";
import { create } from "@bufbuild/protobuf";
import { RuntimeEventSchema, type RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { ENGINE_SHARES, GUEST_LAYER_MOUNTS, shareHostDir } from "../../../guest/vm/engine-layout.ts";
import { buildEngineDisk } from "../platform/engine-disk.ts";
import type { AgentClient, AgentMethod, IoFrame } from "./agent-client.ts";
import { EnginePaths } from "./engine-paths.ts";
import { EngineStdio } from "./engine-stdio.ts";
import { MachineError } from "./machine-error.ts";
import type { VmMachines } from "./vm-machines.ts";

/** The engine machine's size (created once; `arcbox machine inspect arcbox-engine` shows it). */
const ENGINE_SPEC = {
  cpus: Number(process.env.ARCBOX_ENGINE_CPUS ?? 2),
  memoryMib: Number(process.env.ARCBOX_ENGINE_MEMORY_MIB ?? 2048),
  diskGib: Number(process.env.ARCBOX_ENGINE_DISK_GIB ?? 64),
};
const SETUP_TIMEOUT_MS = 60_000;
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

/** The set-up script run in the machine after each (re)connection; idempotent. */
function setupScript(): string {
  const mounts = ENGINE_SHARES.map((s) => `mkdir -p ${s.guestDir}; grep -q " ${s.guestDir} virtiofs " /proc/mounts || mount -t virtiofs ${s.readOnly ? "-o ro " : ""}${s.tag} ${s.guestDir}`);
  return [
    "set -e",
    // The guest clock lags the host's under TCG (no paravirtual clock): the agent stamps
    // container starts and exits, so set it from the host (to the second) each time.
    `date -u -s @${Math.round(Date.now() / 1000)} >/dev/null`,
    // The background loader of stage 2 may be loading them too: "exists" is fine.
    "for m in loop overlay fuse virtiofs; do insmod /opt/arcbox/modules/$m.ko 2>/dev/null || true; done",
    `mkdir -p ${GUEST_LAYER_MOUNTS}`,
    ...mounts,
  ].join("\n");
}

export class EngineMachine {
  readonly name = ENGINE_MACHINE;
  readonly paths: EnginePaths;
  readonly stdio: EngineStdio;
  private readying: Promise<AgentClient> | undefined;
  /** The agent connection the set-up ran on. */
  private setUpOn: AgentClient | undefined;
  private readonly execWaiters = new Map<string, { output: string; done: (code: number) => void }>();
  /** Containers whose process may be alive in the machine (from starts, exits and ContainerStates). */
  private readonly running = new Set<string>();

  constructor(private readonly d: EngineMachineDeps) {
    this.paths = new EnginePaths(d.homeRoot);
    this.stdio = new EngineStdio(d.runDir, () => this.ready(), d.log);
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
    if (this.setUpOn !== agent) {
      if (this.setUpOn) this.stdio.agentGone(this.setUpOn);
      const started = performance.now();
      await this.setup(agent);
      this.setUpOn = agent;
      this.d.log.info("engine machine set up", { ms: Math.round(performance.now() - started) });
    }
    return agent;
  }

  private async setup(agent: AgentClient): Promise<void> {
    const execId = `engine-setup-${randomBytes(6).toString("hex")}`;
    let done!: (code: number) => void;
    const exited = new Promise<number>((r) => (done = r));
    const waiter = { output: "", done };
    this.execWaiters.set(execId, waiter);
    try {
      await agent.call("machineExec", {
        machine: this.name,
        execId,
        args: ["/opt/arcbox/bin/busybox", "sh", "-c", setupScript()],
        env: ["PATH=/opt/arcbox/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        cwd: "/",
      });
      let timer: Timer | undefined;
      const code = await Promise.race([
        exited,
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new MachineError("unavailable", "the engine machine's set-up did not finish in time")), SETUP_TIMEOUT_MS))),
      ]).finally(() => clearTimeout(timer));
      if (code !== 0) throw new MachineError("internal", `the engine machine's set-up failed (exit ${code}): ${waiter.output.trim().slice(-500)}`);
    } finally {
      this.execWaiters.delete(execId);
    }
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
    if (this.setUpOn) this.stdio.agentGone(this.setUpOn);
    this.setUpOn = undefined;
    // No time: the container's start time comes from the guest's clock, which may run
    // ahead of ours, and apid ignores an exit stamped before the start it recorded (a
    // stale exit). Without a time, apid records the exit as of now.
    for (const containerId of this.running) this.d.publish(create(RuntimeEventSchema, { type: "exit", containerId, exitCode: MACHINE_GONE_EXIT, timeUnixNano: 0n }));
    if (this.running.size) this.d.log.warn("the engine machine stopped under running containers; reported them as exited", { containers: this.running.size });
    this.running.clear();
  }

  /** Events of the engine machine's agent; false for a machine exec's not its own. */
  onEvent(e: RuntimeEvent): boolean {
    if (e.type === "machine_exec_exit") {
      const w = this.execWaiters.get(e.execId);
      w?.done(e.exitCode);
      return !!w;
    }
    if (e.type === "exec_exit") this.stdio.execExited(e.execId);
    if (e.type === "start") this.running.add(e.containerId);
    if (e.type === "exit") this.running.delete(e.containerId);
    this.d.publish(e);
    return true;
  }

  /** io frames of the set-up exec or of a stdio stream; false for a machine exec's. */
  onIo(f: IoFrame): boolean {
    const w = this.execWaiters.get(f.sid);
    if (w) {
      if (f.data && w.output.length < 4096) w.output += Buffer.from(f.data).toString();
      return true;
    }
    return this.stdio.onIo(f);
  }

  /** A MachineService call for the engine machine, with its paths and sockets translated. */
  async call(method: AgentMethod, req: never): Promise<unknown> {
    const started = performance.now();
    try {
      if (method === "networkCommands") return await this.networkCommands(req);
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
    const agent = this.setUpOn;
    if (!agent?.isOpen) throw new MachineError("failed_precondition", "the engine machine is not running");
    return agent.call("networkCommands", req);
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
