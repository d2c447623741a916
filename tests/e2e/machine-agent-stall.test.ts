/**
 * A machine whose guest end stops answering must not hang its callers.
 * - The serial relay dies inside the VM (stage 2 restarts it, and the host's old session
 *   then talks to nobody): the next exec fails after the quick-call timeout with a clear
 *   message, vmm opens a new SYNC session by itself, and execs work again.
 * - The guest agent dies (stage 2 restarts it): machine execs, which the relay runs
 *   itself, go on, and calls for the agent (a clean power-off) reach its successor.
 * Real CLI, vmm and qemu (TCG here), busybox image imported through the real docker CLI.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";

const IMAGE = "stall-busybox:1";
const BOOT_MS = 240_000;
// Short for the test, but long enough for a first exec in a TCG guest on a loaded host.
const CALL_TIMEOUT_MS = 20_000;
let d: TestDaemon;

const machine = (args: string[], timeoutMs = BOOT_MS) => d.arcbox(["machine", ...args], { timeoutMs });

/**
 * Execs until one succeeds (bounded): the first exec of a fresh TCG guest on a loaded host
 * may itself outlast the short test timeout, and while vmm reconnects execs fail.
 */
async function execUntilOk(cmd: string[]) {
  const deadline = Date.now() + BOOT_MS - 60_000;
  for (;;) {
    const r = await machine(["exec", "s1", "--", ...cmd], 90_000);
    if (r.code === 0 || Date.now() > deadline) return r;
    expect(r.stderr).toMatch(/not connected|did not answer|lost the connection/);
    await Bun.sleep(1_000);
  }
}

beforeAll(async () => {
  d = new TestDaemon("arcbox-machine-stall-", { ARCBOX_AGENT_CALL_TIMEOUT_MS: String(CALL_TIMEOUT_MS) });
  await d.start();
  await d.importBusybox(IMAGE);
}, 120_000);

afterAll(async () => {
  await d?.arcbox(["machine", "rm", "-f", "s1"]).catch(() => {});
  await d?.dispose();
}, 120_000);

test(
  "a dead serial relay: the next exec fails fast, vmm reconnects, exec works",
  async () => {
    const created = await machine(["create", "s1", "--image", IMAGE, "--cpus", "1", "--memory", "512", "--disk", "1"]);
    expect(created.code).toBe(0);

    // Kill the relay a moment after this exec has answered (so this exec itself completes).
    const kill = await execUntilOk(["sh", "-c", "(sleep 2; kill -9 $(pidof serial-relay)) </dev/null >/dev/null 2>&1 &"]);
    expect(kill.code).toBe(0);
    await Bun.sleep(4_000);

    // The old session reaches nobody now: the call times out instead of hanging.
    const t0 = performance.now();
    const stalled = await machine(["exec", "s1", "--", "echo", "hi"], 60_000);
    const stalledMs = performance.now() - t0;
    expect(stalled.code).not.toBe(0);
    expect(stalled.stderr).toMatch(/did not answer machineExec within 20s/);
    expect(stalledMs).toBeLessThan(CALL_TIMEOUT_MS + 30_000);

    // vmm reconnects on its own (a new SYNC session with the restarted relay).
    const last = await execUntilOk(["echo", "hi"]);
    expect(last.code).toBe(0);
    expect(last.stdout).toBe("hi\n");
    expect(await Bun.file(join(d.home, "log", "vmm.log")).text()).toMatch(/guest agent reconnected machine=s1/);
  },
  BOOT_MS * 2,
);

test(
  "a dead guest agent: execs go on, and a clean stop reaches its successor",
  async () => {
    const before = await execUntilOk(["pidof", "bun"]);
    expect(before.code).toBe(0);
    const oldPid = before.stdout.trim();
    const kill = await machine(["exec", "s1", "--", "kill", "-9", oldPid], 60_000);
    expect(kill.code).toBe(0);

    // No agent right now (stage 2 restarts it after 1 s, then it takes seconds to start):
    // the relay still runs execs.
    const during = await machine(["exec", "s1", "--", "sh", "-c", "echo out; echo err >&2; exit 7"], 60_000);
    expect(during.code).toBe(7);
    expect(during.stdout).toBe("out\n");
    expect(during.stderr).toBe("err\n");

    // The power-off request waits in the relay for the restarted agent, which does it.
    const stop = await machine(["stop", "s1"]);
    expect(stop.code).toBe(0);
    expect(JSON.parse((await machine(["inspect", "s1"])).stdout).StopReason).toBe("poweroff");
    const log = (await machine(["logs", "s1"])).stdout;
    expect(log).toMatch(/guest agent exited/);
  },
  BOOT_MS * 2,
);
