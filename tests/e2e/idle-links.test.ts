/**
 * The links that stay open while containers idle (vmm ⇄ host agent, host agent →
 * apid's runtime events) run over FIFOs, not socket connections: Bun wakes a process
 * every second while any socket connection is open in it (lib/ipc/fifo-stream.ts). The
 * test checks the transport, not time: vmm's state names the link, no socket
 * connection joins vmm and the agent, the agent writes apid's events FIFO (vmm relays
 * nothing), and events still arrive through it after vmm is killed, and after the agent
 * is killed and a new one takes over.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { writersOf } from "../helpers/procfs.ts";
import { waitFor } from "../helpers/wait.ts";

const IMAGE = "idle-links-busybox:1";
let d: TestDaemon;

beforeAll(async () => {
  d = new TestDaemon("arcbox-idle-links-");
  await d.start();
  await d.importBusybox(IMAGE);
}, 120_000);

afterAll(async () => {
  await d?.docker(["rm", "-f", "idler", "exiter"]).catch(() => {});
  await d?.dispose();
}, 60_000);

interface VmmState {
  machines: { id: string; link?: string }[];
  eventSubscriptions: { streams: number; fifos: number };
}
async function vmmState(): Promise<VmmState> {
  const res = await fetch("http://x/state", { unix: join(d.home, "run", "vmm.debug.sock") } as RequestInit);
  return (await res.json()) as VmmState;
}

const pidOf = async (pattern: string) => Number((await run(["pgrep", "-f", "--", pattern])).stdout.trim().split("\n")[0]);
/** vmm's pid as the supervisor reports it (it runs from source or from dist/). */
async function vmmPid(): Promise<number> {
  const m = /^vmm\s+(?:ready|running)\s+(\d+)/m.exec((await d.arcbox(["status"])).stdout);
  return m ? Number(m[1]) : 0;
}

/** Inodes of the Unix sockets a process has open. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {}
  }
  return out;
}

/** Inode pairs of connected Unix sockets (ss lists each end with its peer's inode). */
function connectedPeers(): [string, string][] {
  const out = Bun.spawnSync(["ss", "-xpnH", "state", "connected"]).stdout.toString();
  const pairs: [string, string][] = [];
  for (const line of out.split("\n")) {
    // Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port ...
    const f = line.trim().split(/\s+/);
    if (f.length >= 8) pairs.push([f[5]!, f[7]!]);
  }
  return pairs;
}

const eventsFifo = () => join(d.home, "data", "apid", "events.fifo");

test("with a container idling, vmm reaches the agent and the agent apid over FIFOs, not socket connections", async () => {
  expect((await d.docker(["run", "-d", "--name", "idler", "--network", "none", IMAGE, "sleep", "600"])).code).toBe(0);
  const state = await vmmState();
  expect(state.machines.find((m) => m.id === "host")?.link).toBe("fifo");
  // The agent writes apid's events itself: vmm holds no subscription.
  expect(state.eventSubscriptions).toEqual({ streams: 0, fifos: 0 });

  const vmm = await vmmPid();
  const agent = await pidOf(`guest.*--home ${d.home}$`);
  expect(vmm).toBeGreaterThan(0);
  expect(agent).toBeGreaterThan(0);
  const vmmSockets = socketInodes(vmm);
  const agentSockets = socketInodes(agent);
  const joined = connectedPeers().filter(([a, b]) => (vmmSockets.has(a) && agentSockets.has(b)) || (vmmSockets.has(b) && agentSockets.has(a)));
  expect(joined).toEqual([]);
  // The FIFO pair is what they hold instead.
  const fifoIn = join(d.home, "run", "guest-agent.in.fifo");
  const holds = (pid: number) =>
    readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === fifoIn;
      } catch {
        return false;
      }
    });
  expect(holds(vmm)).toBe(true);
  expect(holds(agent)).toBe(true);
  expect(writersOf(eventsFifo())).toEqual([agent]);
  // Nor does apid hold a socket connection to the agent.
  const apid = await pidOf(`apid.*--home ${d.home}`);
  const apidSockets = socketInodes(apid);
  expect(connectedPeers().filter(([a, b]) => (apidSockets.has(a) && agentSockets.has(b)) || (apidSockets.has(b) && agentSockets.has(a)))).toEqual([]);
}, 60_000);

test("events reach apid through the FIFO after vmm is killed, and from a new agent after the agent is", async () => {
  const vmm = await vmmPid();
  const agent = await pidOf(`guest.*--home ${d.home}$`);
  // Never kill(0, ...): that is this test runner's own process group.
  expect(vmm).toBeGreaterThan(0);
  process.kill(vmm, "SIGKILL");
  // The supervisor brings vmm back; apid's subscription never depended on it.
  await waitFor("a new vmm linked to the agent", async () => {
    try {
      const s = await vmmState();
      return s.machines.find((m) => m.id === "host")?.link === "fifo";
    } catch {
      return false;
    }
  });
  expect(await vmmPid()).not.toBe(vmm);
  expect(writersOf(eventsFifo())).toEqual([agent]);
  expect((await d.docker(["run", "-d", "--name", "exiter", "--network", "none", IMAGE, "sh", "-c", "sleep 1; exit 7"])).code).toBe(0);
  expect((await d.docker(["wait", "exiter"])).stdout.trim()).toBe("7");

  // The agent killed: apid reads the end of its FIFO and subscribes again; the new agent vmm starts writes it.
  process.kill(agent, "SIGKILL");
  await waitFor("a new agent writing apid's events", async () => {
    const w = writersOf(eventsFifo());
    return w.length === 1 && w[0] !== agent;
  });
  expect((await d.docker(["rm", "-f", "exiter"])).code).toBe(0);
  expect((await d.docker(["run", "-d", "--name", "exiter", "--network", "none", IMAGE, "sh", "-c", "sleep 1; exit 8"])).code).toBe(0);
  expect((await d.docker(["wait", "exiter"])).stdout.trim()).toBe("8");
  const log = readFileSync(join(d.home, "log", "vmm.log"), "utf8");
  expect(log).toContain("via=fifo");
}, 90_000);
