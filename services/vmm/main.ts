/**
 * vmm: owns machines. Started lazily by the supervisor on first use; exits when no
 * machine runs a container and nobody follows its events. Today the one
 * machine is "host": the guest agent on this Linux host, which vmm starts (or finds
 * already running) and talks to over the agent protocol.
 */
import { runService } from "../../lib/service/run-service.ts";
import { EventFanout } from "./core/event-fanout.ts";
import { HostMachine } from "./core/host-machine.ts";
import { machineRoutes } from "./server/machine-service.ts";

await runService({
  name: "vmm",
  async start(ctx) {
    const events = new EventFanout();
    const host = new HostMachine(ctx.home, ctx.log, (e) => events.publish(e));
    // Reconnect at once: a restarted vmm resumes event delivery for running containers.
    await host.agent();
    return {
      routes: (router) => machineRoutes(router, host, events),
      state: () => ({ machines: [{ id: host.id, kind: "host", state: host.state, socket: host.socketPath }], eventSubscribers: events.subscriberCount }),
      // Idle: nobody follows events and the agent runs no container (an agent that is not
      // connected has none: it only exits when empty). The agent then exits by itself too.
      idle: async () => {
        if (events.subscriberCount > 0) return false;
        if (host.state !== "running") return true;
        const states = (await (await host.agent()).call("containerStates", { machine: "host", ids: [] } as never)) as { containers: unknown[] };
        return states.containers.length === 0;
      },
      // Leave the agent and its containers running: they outlive vmm by design.
      stop: async () => host.close(),
    };
  },
});
