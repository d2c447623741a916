/**
 * vmm: owns machines. Started lazily by the supervisor on first use. Two kinds:
 * "host", the guest agent running directly on this Linux host (containers), and VM
 * machines, Linux VMs run by a backend (qemu) with the same agent inside. vmm exits as
 * idle only when no VM runs, no container runs on the host agent and nobody follows
 * its events; VMs outlive vmm and are adopted again by the next one.
 */
import { join } from "node:path";
import { fromConnectError } from "../../lib/rpc/connect-errors.ts";
import { runService } from "../../lib/service/run-service.ts";
import { chooseAccelerator } from "./backend/qemu/accel-probe.ts";
import { QemuBackend } from "./backend/qemu/qemu-backend.ts";
import type { AcceleratorChoice } from "./backend/backend.ts";
import { EventFanout } from "./core/event-fanout.ts";
import { HostMachine } from "./core/host-machine.ts";
import { noNetwork } from "./core/machine-network.ts";
import { VmMachines } from "./core/vm-machines.ts";
import { MachineExecs } from "./core/machine-execs.ts";
import { guestBoot } from "./platform/guest-boot.ts";
import { netdNetwork } from "./platform/netd-network.ts";
import { managerRoutes } from "./server/manager-service.ts";
import { machineRoutes } from "./server/machine-service.ts";
import { MachineStore } from "./storage/machine-store.ts";

await runService({
  name: "vmm",
  async start(ctx) {
    const events = new EventFanout();
    const host = new HostMachine(ctx.home, ctx.log, (e) => events.publish(e));
    let accel: Promise<AcceleratorChoice> | undefined;
    const backend = new QemuBackend({
      log: ctx.log,
      // Probed on the first VM start, then cached on disk (accel.json) across restarts.
      accelerator: () => (accel ??= chooseAccelerator({ binary: "qemu-system-x86_64", kernel: guestBoot().kernel, cacheFile: join(ctx.dataDir, "accel.json"), log: ctx.log }).catch((err) => {
        accel = undefined;
        throw err;
      })),
    });
    const store = new MachineStore(ctx.dataDir);
    const vms = new VmMachines({
      machinesDir: join(ctx.dataDir, "machines"),
      store,
      backend,
      boot: () => guestBoot(),
      images: {
        prepareRootfs: (req) => ctx.clients.images.prepareRootfs(req).catch((err) => Promise.reject(fromConnectError(err))),
        releaseRootfs: (req) => ctx.clients.images.releaseRootfs(req).catch((err) => Promise.reject(fromConnectError(err))),
      },
      // ARCBOX_MACHINE_NETWORK=none runs machines without a NIC (no netd involvement).
      onEvent: (_machine, e) => execs.onEvent(e),
      onIo: (_machine, f) => execs.onIo(f),
      onStopped: (machine) => execs.machineGone(machine),
      onAgentLost: (machine) => execs.agentLost(machine),
      network: process.env.ARCBOX_MACHINE_NETWORK === "none" ? noNetwork : netdNetwork(() => ctx.clients.machineNetworks),
      log: ctx.log,
    });
    const execs = new MachineExecs(ctx.home.run, (name) => vms.agent(name), ctx.log);
    // Reconnect at once: a restarted vmm resumes event delivery for running containers
    // and watches the VMs an earlier vmm started.
    await Promise.all([host.agent(), vms.recover()]);
    return {
      routes: (router) => {
        machineRoutes(router, host, events);
        managerRoutes(router, vms, execs);
      },
      state: () => ({
        machines: [
          { id: host.id, kind: "host", state: host.state, socket: host.socketPath },
          ...vms.list().map((m) => ({ id: m.name, kind: "vm", state: m.state, pid: m.pid, accel: m.accel })),
        ],
        eventSubscribers: events.subscriberCount,
      }),
      // Idle: no VM runs, nobody follows events and the host agent runs no container (an
      // agent that is not connected has none: it only exits when empty).
      idle: async () => {
        if (vms.anyRunning || events.subscriberCount > 0) return false;
        if (host.state !== "running") return true;
        const states = (await (await host.agent()).call("containerStates", { machine: "host", ids: [] } as never)) as { containers: unknown[] };
        return states.containers.length === 0;
      },
      // Leave the agent, its containers and the VMs running: they outlive vmm by design.
      stop: async () => {
        vms.release();
        host.close();
        store.close();
      },
    };
  },
});
