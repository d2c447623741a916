/**
 * Connect handlers of MachineService: translation only. Container and exec calls are
 * forwarded to the addressed machine's guest agent; Events streams the agents' events.
 */
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { MachineService } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { AgentMethod } from "../core/agent-client.ts";
import type { EngineMachine } from "../core/engine-machine.ts";
import type { EventFanout } from "../core/event-fanout.ts";
import type { HostMachine } from "../core/host-machine.ts";
import { MachineError } from "../core/machine-error.ts";

/** `engine`: in VM mode, the engine machine (its calls are translated, engine-machine.ts). */
export function machineRoutes(router: ConnectRouter, host: HostMachine, events: EventFanout, engine?: EngineMachine): void {
  const machine = (name: string) => {
    if (name && name !== host.id) throw new MachineError("not_found", `no such machine: ${name}`);
    return host;
  };
  const forward =
    <K extends AgentMethod>(method: K) =>
    async (req: { machine: string } & Parameters<Awaited<ReturnType<HostMachine["agent"]>>["call"]>[1]) =>
      engine && req.machine === engine.name ? (engine.call(method, req as never) as never) : (await machine(req.machine).agent()).call(method, req as never);

  router.service(MachineService, {
    list: () => ({ items: [{ id: host.id, name: host.id, kind: "host", state: host.state }] }),
    createContainer: forward("createContainer"),
    startContainer: forward("startContainer"),
    killContainer: forward("killContainer"),
    deleteContainer: forward("deleteContainer"),
    pauseContainer: forward("pauseContainer"),
    resumeContainer: forward("resumeContainer"),
    updateContainer: forward("updateContainer"),
    containerStates: forward("containerStates"),
    ensureRunning: async (req) => {
      if (engine && req.machine === engine.name) await engine.ready();
      else machine(req.machine);
      return {};
    },
    resizeTty: forward("resizeTty"),
    top: forward("top"),
    stats: forward("stats"),
    createExec: forward("createExec"),
    startExec: forward("startExec"),
    execState: forward("execState"),
    agentInfo: forward("agentInfo"),
    releaseLayers: forward("releaseLayers"),
    networkCommands: forward("networkCommands"),
    volumeOp: forward("volumeOp"),
    async *events(req, ctx: HandlerContext) {
      if (req.fifo && req.unsubscribe) {
        events.unsubscribeFifo(req.fifo);
        // The host agent's own subscription, if one is connected (none is started for this).
        if (!(engine && req.machine === engine.name)) await machine(req.machine).unsubscribeEvents(req.fifo);
        yield {};
        return;
      }
      // Connect to the agent first, so events of containers started earlier flow.
      if (engine && req.machine === engine.name) await engine.ready();
      else if (req.fifo && (await machine(req.machine).subscribeEvents(req.fifo))) {
        // The host agent writes its events to the FIFO itself: they reach the caller
        // while vmm is gone, so vmm need not stay up for running containers.
        events.unsubscribeFifo(req.fifo);
        yield {};
        return;
      } else await machine(req.machine).agent();
      if (req.fifo) {
        // Events go to the caller's FIFO from now on; this stream only confirms it.
        events.subscribeFifo(req.fifo);
        yield {};
        return;
      }
      // The first message carries no event: it confirms the subscription (Connect sends a
      // stream's response headers only with its first message).
      for await (const event of events.stream(ctx.signal)) yield event ? { event } : {};
    },
  });
}
