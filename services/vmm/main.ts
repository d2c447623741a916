/**
 * vmm: owns machines. Started lazily by the supervisor on first use. Two kinds:
 * "host", the guest agent running directly on this Linux host (containers), and VM
 * machines, Linux VMs run by a backend (qemu) with the same agent inside. vmm exits as
 * idle when no VM runs and nobody follows events through it, also while host
 * containers run (their agent outlives vmm and writes their events to apid itself);
 * VMs outlive vmm and are adopted again by the next one.
 */
import { join } from "node:path";
import { fromConnectError } from "../../lib/rpc/connect-errors.ts";
import { runService } from "../../lib/service/run-service.ts";
import { chooseAccelerator } from "./backend/qemu/accel-probe.ts";
import { QemuBackend } from "./backend/qemu/qemu-backend.ts";
import type { AcceleratorChoice } from "./backend/backend.ts";
import { ENGINE_MACHINE, engineMode } from "../../lib/engine-mode.ts";
import { EngineMachine } from "./core/engine-machine.ts";
import { EventFanout } from "./core/event-fanout.ts";
import { HostMachine } from "./core/host-machine.ts";
import { noNetwork } from "./core/machine-network.ts";
import { VmMachines } from "./core/vm-machines.ts";
import { MachineExecs } from "./core/machine-execs.ts";
import { MachinePortSync } from "./core/machine-ports.ts";
import { guestBoot } from "./platform/guest-boot.ts";
import { netdNetwork } from "./platform/netd-network.ts";
import { fsdShares } from "./platform/fsd-shares.ts";
import { managerRoutes } from "./server/manager-service.ts";
import { machineRoutes } from "./server/machine-service.ts";
import { MachineStore } from "./storage/machine-store.ts";

/**
 * In host mode, once containers run, vmm is needed only for the next call (create,
 * start, exec, stats, stop, the release after an exit): it holds nothing for them in
 * memory, so it goes after a quiet minute (~12 MB anonymous, ~20 MB PSS at rest) and
 * the next call pays its start (spawn to ready ~0.2-0.3 s). A minute, not imaged's 20 s:
 * health checks (default interval 30 s) are execs through vmm, and should not restart
 * it at every check.
 */
const HOST_IDLE_EXIT_SECONDS = 60;

// No top-level await: the bundle is compiled to bytecode (scripts/build.sh), which needs
// a CommonJS-shaped module.
runService({
  name: "vmm",
  async start(ctx) {
    const events = new EventFanout(ctx.home.root);
    const host = new HostMachine(ctx.home, ctx.log, (e) => events.publish(e));
    let accel: Promise<AcceleratorChoice> | undefined;
    const backend = new QemuBackend({
      log: ctx.log,
      // Probed on the first VM start, then cached on disk (accel.json) across restarts.
      accelerator: () =>
        (accel ??= chooseAccelerator({ binary: "qemu-system-x86_64", kernel: guestBoot().kernel, cacheFile: join(ctx.dataDir, "accel.json"), log: ctx.log }).catch((err) => {
          accel = undefined;
          throw err;
        })),
    });
    const store = new MachineStore(ctx.dataDir);
    // ARCBOX_MACHINE_NETWORK=none runs machines without a NIC (no netd involvement). The
    // engine machine gets its NIC like any machine: netd's TAP, DHCP, DNS and NAT.
    const network = process.env.ARCBOX_MACHINE_NETWORK === "none" ? noNetwork : netdNetwork(() => ctx.clients.machineNetworks);
    const userShares = fsdShares(() => ctx.clients.shares);
    const vms = new VmMachines({
      machinesDir: join(ctx.dataDir, "machines"),
      store,
      backend,
      boot: () => guestBoot(),
      images: {
        prepareRootfs: (req) => ctx.clients.images.prepareRootfs(req).catch((err) => Promise.reject(fromConnectError(err))),
        releaseRootfs: (req) => ctx.clients.images.releaseRootfs(req).catch((err) => Promise.reject(fromConnectError(err))),
      },
      // The engine machine's own frames (its containers' events and streams) go to the
      // engine; `arcbox machine exec` works in it as in any machine.
      onEvent: (machine, e) => {
        if (engine && machine === ENGINE_MACHINE && engine.onEvent(e)) return;
        execs.onEvent(e);
        ports.onEvent(machine, e);
      },
      onIo: (machine, f) => (engine && machine === ENGINE_MACHINE && engine.onIo(f)) || execs.onIo(f),
      onStopped: (machine) => {
        execs.machineGone(machine);
        void ports.clear(machine);
        if (machine === ENGINE_MACHINE) engine?.machineGone();
      },
      onAgentUp: (machine) => ports.sync(machine),
      onAgentLost: (machine) => execs.agentLost(machine),
      network,
      // The engine machine's shares are the engine's (its data, containers and binds);
      // every other machine's are its configured mounts.
      shares: {
        // No mounts, no fsd: servers of an earlier definition stopped when the VM exited.
        start: (machine, mounts) => (engine && machine === ENGINE_MACHINE ? engine.startShares(machine) : mounts.length ? userShares.start(machine, mounts) : Promise.resolve([])),
        stop: (machine) => (engine && machine === ENGINE_MACHINE ? engine.stopShares(machine) : userShares.stop(machine)),
        bootMounts: (machine) => (engine && machine === ENGINE_MACHINE ? engine.bootMounts() : []),
      },
      log: ctx.log,
    });
    const ports = new MachinePortSync(network, (name) => vms.connectedAgent(name), ctx.log);
    const execs = new MachineExecs(ctx.home.run, (name) => vms.agent(name));
    // VM mode: every container runs in the engine machine; the host agent is not started.
    const vmMode = engineMode() === "vm";
    const engine = vmMode
      ? new EngineMachine({
          homeRoot: ctx.home.root,
          runDir: ctx.home.run,
          vms,
          shares: () => ({
            startShare: (req) => ctx.clients.shares.startShare(req).catch((err) => Promise.reject(fromConnectError(err))),
            stopShare: (req) => ctx.clients.shares.stopShare(req).catch((err) => Promise.reject(fromConnectError(err))),
          }),
          publish: (e) => events.publish(e),
          log: ctx.log,
        })
      : undefined;
    // Reconnect at once: a restarted vmm resumes event delivery for running containers
    // and watches the VMs an earlier vmm started.
    await Promise.all([vmMode ? undefined : host.agent(), vms.recover(), engine?.files.listen()]);
    // The engine machine boots now, not on the first docker run (which would wait for it).
    if (engine) void engine.ready().catch((err) => ctx.log.error("the engine machine did not come up", { error: err }));
    return {
      routes: (router) => {
        machineRoutes(router, host, events, engine);
        managerRoutes(router, vms, execs, (name) => ports.forwarding(name));
      },
      state: () => ({
        machines: [
          { id: host.id, kind: "host", state: host.state, socket: host.socketPath, link: host.link },
          ...vms.list().map((m) => ({ id: m.name, kind: "vm", state: m.state, pid: m.pid, accel: m.accel })),
        ],
        eventSubscribers: events.subscriberCount,
        eventSubscriptions: events.subscriptions,
        ...(engine ? { engineFiles: engine.files.stats() } : {}),
      }),
      // Idle: no VM runs and nobody follows events through vmm. Running host containers
      // do not hold it: their agent runs detached and writes their events to apid's FIFO
      // itself (an agent from before that has vmm relay them: a FIFO subscription here).
      idle: () => {
        events.pruneFifos();
        return !vms.anyRunning && events.subscriberCount === 0;
      },
      idleExitSeconds: vmMode ? undefined : HOST_IDLE_EXIT_SECONDS,
      // Leave the agent, its containers and the VMs running: they outlive vmm by design.
      stop: async () => {
        vms.release();
        host.close();
        engine?.files.close();
        store.close();
      },
    };
  },
}).catch((err) => {
  console.error("vmm failed to start:", err);
  process.exit(1);
});
