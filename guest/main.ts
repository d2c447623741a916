/**
 * The guest agent: runs containers for vmm through runc and per-process shims. On a
 * Linux host it runs on the host as the "host" machine, detached from vmm so it and
 * its containers outlive restarts of vmm and the supervisor; inside a VM the same code
 * runs unchanged behind virtio-serial/vsock.
 *
 * Usage: guest-agent --home <ARCBOX_HOME> [--serial <virtio-serial port device>]
 *   --serial: inside a VM: the host reaches this agent through that port and the serial
 *   relay that stage 2 runs on it (native/serial/), which opens the agent's FIFO pair
 *   (made by stage 2) for each host session; never exit when idle.
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import { setPriority } from "node:os";
import { join } from "node:path";
import { arcboxHome, ensureHome } from "../lib/home.ts";
import { createLogger } from "../lib/log.ts";
import { parseHomeFlag } from "../lib/service/argv.ts";
import { tryLockExclusive } from "../native/libc.ts";
import { Agent } from "./core/agent.ts";
import { AgentLayout } from "./core/layout.ts";
import { bootMark } from "./platform/boot-trace.ts";
import { AgentServer } from "./server/agent-server.ts";

bootMark("agent-main");
const log = createLogger("guest-agent");
const argv = process.argv.slice(2);
const home = arcboxHome(parseHomeFlag(argv));
const serialFlag = argv.indexOf("--serial");
const serialPort = serialFlag >= 0 ? argv[serialFlag + 1] : undefined;
ensureHome(home);
const stateRoot = join(home.data, "vmm", "host");
mkdirSync(stateRoot, { recursive: true, mode: 0o700 });
const layout = new AgentLayout(stateRoot, home.run);

// One agent per home. An agent that is just exiting (idle) still holds the lock for a
// moment, so wait briefly; if the lock stays taken, another agent is serving: leave.
// In a VM, stage 2 runs the only agent, and bun:ffi's set-up costs ~0.7 s under TCG.
// No lock file in a VM either: a file open for writing keeps the root from being
// remounted read-only at power-off.
const LOCK_WAIT_MS = 3_000;
const lockFd = serialPort ? undefined : openSync(layout.lockFile, "a");

let agent: Agent | undefined;
let server: AgentServer | undefined;
let stopping = false;
async function stop(reason: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info("stopping", { reason, containers: agent?.containerCount });
  await server?.stop();
  if (lockFd !== undefined) closeSync(lockFd);
  process.exit(0);
}

// No top-level await: the tools image carries this bundle as CommonJS with Bun's
// bytecode cache (scripts/build-guest.sh), which needs an entry without it.
async function main(): Promise<void> {
  const lockDeadline = Date.now() + LOCK_WAIT_MS;
  while (lockFd !== undefined && !tryLockExclusive(lockFd)) {
    if (Date.now() > lockDeadline) {
      log.info("another agent is running for this home; exiting");
      process.exit(0);
    }
    await Bun.sleep(50);
  }

  const a = new Agent(layout, log, { inVm: !!serialPort });
  agent = a;
  // In a machine the first create would probe crun (`crun --version`, its first run in a
  // fresh TCG guest: 0.2-0.6 s): probe now, beside the rest of the start-up.
  if (serialPort) void a.containers.oci();
  await a.containers.reconcile();
  bootMark("agent-reconciled");
  server = new AgentServer(a, log, {
    socket: layout.agentSocket,
    notifySocket: layout.notifySocket,
    ioDir: layout.ioDir,
    // On the host apid's events FIFO is written here directly, so vmm can exit while
    // containers run; in a VM vmm relays the machine's events.
    eventFifoDir: serialPort ? undefined : home.root,
    // No process to watch and nobody to serve: an idle agent goes away (vmm starts a new
    // one). Checked when the last client leaves and again after each container exit.
    // Not in a VM: there it is the machine's agent, and the host comes back to it.
    onIdle: () => {
      if (!serialPort && a.liveContainerCount === 0) void stop("idle");
    },
  });
  await server.start();
  // vmm's session: over FIFOs, so an idle link wakes neither side. On a host vmm opens
  // them; in a VM the serial relay does, for the host at the other end.
  server.serveFifoSessions(layout.fifoIn, layout.fifoOut);
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGHUP", () => {});
  // Stage 2 starts the agent at nice 10 so that the machine execs the serial relay runs
  // meanwhile get the vCPU; serving, the agent (and what it starts) runs at nice 0.
  if (serialPort) setPriority(0);
  bootMark("agent-ready");
  log.info("ready", { pid: process.pid, socket: layout.agentSocket, serial: serialPort, containers: a.containerCount });
}

main().catch((err) => {
  log.error("the agent could not start", { error: err });
  process.exit(1);
});
