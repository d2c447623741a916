/**
 * The guest agent's request handlers: one per MachineService container/exec method,
 * taking and returning that method's protobuf messages. Transport lives in server/.
 */
import type { MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Logger } from "../../lib/log.ts";
import type { MachineService } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { ContainerRuntime } from "./container-runtime.ts";
import { EventHub } from "./event-hub.ts";
import { ExecRuntime } from "./exec-runtime.ts";
import { MachineExecRuntime } from "./machine-exec.ts";
import { basename } from "node:path";
import { releaseUnusedLayers } from "../platform/layer-images.ts";
import { powerOffMachine } from "../platform/power.ts";
import { GuestError } from "./guest-error.ts";
import type { AgentLayout } from "./layout.ts";
import { RecordStore, type ExitStatus } from "../storage/records.ts";
import { containerStats } from "./stats.ts";
import { top } from "./top.ts";
import { MachinePorts } from "../vm/machine-ports.ts";
import { runVolumeOp } from "../vm/machine-volumes.ts";
import type { AgentMethod } from "../protocol/messages.ts";

type Methods = typeof MachineService.method;
type Input<K extends keyof Methods> = MessageShape<Methods[K]["input"]>;
type Output<K extends keyof Methods> = MessageInitShape<Methods[K]["output"]>;
export type AgentHandlers = { [K in AgentMethod]: (req: Input<K>) => Promise<Output<K>> | Output<K> };

export interface AgentOptions {
  /** The agent runs inside a VM of its own: Poweroff powers it off (never the host). */
  inVm: boolean;
}

export class Agent {
  readonly events = new EventHub();
  readonly records: RecordStore;
  readonly containers: ContainerRuntime;
  readonly execs: ExecRuntime;
  readonly machineExecs: MachineExecRuntime;
  /** In a VM: its listening ports for the host, watched from the first ListeningPorts. */
  private ports: MachinePorts | undefined;

  constructor(
    readonly layout: AgentLayout,
    private readonly log: Logger,
    private readonly opts: AgentOptions = { inVm: false },
  ) {
    this.records = new RecordStore(layout);
    this.records.load();
    this.containers = new ContainerRuntime(layout, this.records, this.events, log, opts.inVm);
    this.execs = new ExecRuntime(this.containers, this.events);
    this.machineExecs = new MachineExecRuntime(layout, this.events, (dir, rows, cols) => this.containers.resizeTty(dir, rows, cols), log);
  }

  /** Number of containers this agent knows (running or not). */
  get containerCount(): number {
    return this.records.containers.size;
  }

  /**
   * Containers with a process whose exit the agent must hear (created, running or
   * paused). Stopped ones live on disk only: a later agent serves them just as well,
   * so they do not keep an idle agent alive.
   */
  get liveContainerCount(): number {
    let n = 0;
    for (const r of this.records.containers.values()) if (this.records.status(r) !== "stopped") n++;
    // An exit status only held in memory would be lost with the agent.
    return n + (this.records.hasUnsavedExits ? 1 : 0);
  }

  readonly handlers: AgentHandlers = {
    createContainer: (req) => this.containers.create(req),
    startContainer: (req) => this.containers.start(req.id),
    killContainer: async (req) => {
      await this.containers.kill(req.id, req.signal, req.all);
      return {};
    },
    deleteContainer: async (req) => {
      await this.containers.delete(req.id, req.force);
      return {};
    },
    pauseContainer: async (req) => {
      await this.containers.pause(req.id);
      return {};
    },
    resumeContainer: async (req) => {
      await this.containers.resume(req.id);
      return {};
    },
    updateContainer: async (req) => {
      await this.containers.update(req.id, req.resources);
      return {};
    },
    containerStates: (req) => {
      const ids = req.ids.length ? req.ids.filter((id) => this.records.containers.has(id)) : [...this.records.containers.keys()];
      return { containers: ids.map((id) => this.containers.state(id)) };
    },
    resizeTty: (req) => {
      if (req.execId) this.execs.resizeTty(req.execId, req.height, req.width);
      else this.containers.resizeTty(this.containers.layout.containerDir(this.containers.get(req.id).id), req.height, req.width);
      return {};
    },
    top: async (req) => {
      const r = this.containers.get(req.id);
      if (this.records.status(r) === "stopped") throw new GuestError("failed_precondition", `container ${req.id} is not running`);
      return top(await (await this.containers.oci()).ps(req.id), req.psArgs);
    },
    stats: (req) => {
      const r = this.containers.get(req.id);
      const running = this.records.status(r) !== "stopped";
      return { statsJson: JSON.stringify(containerStats(r.id, r.id, r.cgroupPath, running ? r.pid : 0)) };
    },
    createExec: (req) => {
      this.execs.createExec(req.containerId, req.execId, req.process);
      return {};
    },
    startExec: (req) => this.execs.startExec(req.containerId, req.execId, req.detach, req.process),
    execState: (req) => this.execs.state(req.execId),
    machineExec: (req) => this.machineExecs.start(req),
    machineExecResize: (req) => {
      this.machineExecs.resizeTty(req.execId, req.rows, req.cols);
      return {};
    },
    machineExecSignal: (req) => {
      this.machineExecs.signal(req.execId, req.signal);
      return {};
    },
    poweroff: () => {
      if (!this.opts.inVm) throw new GuestError("failed_precondition", "this agent runs on the host: it does not power it off");
      // After the answer has gone out.
      setImmediate(() => void powerOffMachine(this.log).catch((err) => this.log.error("power-off failed", { error: err })));
      return {};
    },
    agentInfo: async () => {
      const oci = await this.containers.oci();
      return { ociRuntime: oci.name, ociRuntimeVersion: await oci.version() };
    },
    // The host names the layers it removed: no waiting for the share's name cache.
    releaseLayers: async (req) => ({ released: (await releaseUnusedLayers(undefined, undefined, new Set(req.layers))).map((m) => basename(m)) }),
    listeningPorts: async () => {
      if (!this.opts.inVm) return { ports: [] };
      this.ports ??= new MachinePorts(this.log, () => this.events.emit({ type: "machine_ports", containerId: "" }));
      return { ports: (await this.ports.list()).map((p) => ({ protocol: p.protocol, port: p.port, loopbackOnly: p.loopbackOnly })) };
    },
    networkCommands: async () => {
      // On the host netd runs its tools itself; in a machine the serial relay runs them
      // (native/serial/netcmd.c) before they could reach the agent.
      throw new GuestError(
        "failed_precondition",
        this.opts.inVm ? "network commands are run by the machine's serial relay, not its agent" : "network commands run in a machine only (netd runs them on the host)",
      );
    },
    volumeOp: (req) => {
      // On the host fsd keeps volumes itself: only the engine machine's agent holds them.
      if (!this.opts.inVm) throw new GuestError("failed_precondition", "volume operations run in a VM's agent only (fsd keeps the host's volumes)");
      return runVolumeOp(req);
    },
  };

  /** A shim's "exit <create|exec> <id> [<code> <finishedAtUnixNano> <oom>]" line. */
  onShimExit(kind: string, id: string, status?: ExitStatus): Promise<void> | void {
    // The shim could not write its exit file (full disk): its message carries the status.
    if (status && (kind === "create" || kind === "exec")) this.records.rememberExit(kind, id, status);
    if (kind === "create") return this.containers.onExitNotification(id);
    if (kind === "exec") return this.execs.onExitNotification(id);
    if (kind === "run") return this.machineExecs.onExitNotification(id);
  }
}
