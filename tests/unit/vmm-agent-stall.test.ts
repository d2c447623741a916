/**
 * vmm's side of an agent that stops answering: a quick call times out and reports the
 * session stalled (once), other calls are not limited, and execs that ran over a lost
 * session end with 255 and say why instead of waiting forever.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient } from "../../services/vmm/core/agent-client.ts";
import { MachineExecs } from "../../services/vmm/core/machine-execs.ts";

const dir = mkdtempSync(join(tmpdir(), "arcbox-agent-stall-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A peer that accepts and reads requests but never answers (a dead guest agent). */
async function silentPeer(): Promise<{ client: AgentClient; received: () => number; close: () => void }> {
  const path = join(dir, `silent-${Math.random().toString(16).slice(2)}.sock`);
  let bytes = 0;
  const server = createServer((s) => s.on("data", (d: Buffer) => (bytes += d.length)));
  await new Promise<void>((r) => server.listen(path, () => r()));
  const socket: Socket = connect(path);
  await new Promise<void>((r) => socket.once("connect", () => r()));
  const client = new AgentClient(
    socket,
    () => {},
    () => {},
  );
  return { client, received: () => bytes, close: () => (client.close(), server.close()) };
}

test("a quick call times out, names the method, and reports the stall once", async () => {
  const p = await silentPeer();
  let stalls = 0;
  p.client.onStalled = () => stalls++;
  const t0 = performance.now();
  const first = p.client.call("machineExec", { machine: "m1", execId: "e1", args: ["true"] }, { timeoutMs: 150 });
  const second = p.client.call("machineExecResize", { machine: "m1", execId: "e1", rows: 1, cols: 1 }, { timeoutMs: 150 });
  // Both are settled together: awaiting one first would leave the other's rejection
  // unhandled for a moment when their timers fire in the same tick.
  const [a, b] = await Promise.allSettled([first, second]);
  expect(a.status === "rejected" && String(a.reason)).toMatch(/did not answer machineExec within 0s; reconnecting/);
  expect(b.status === "rejected" && String(b.reason)).toMatch(/did not answer machineExecResize/);
  expect(performance.now() - t0).toBeLessThan(2_000);
  expect(p.received()).toBeGreaterThan(0);
  await Bun.sleep(20);
  expect(stalls).toBe(1);
  p.close();
});

test("a call without a timeout keeps waiting (long operations are not cut off)", async () => {
  const p = await silentPeer();
  let stalls = 0;
  p.client.onStalled = () => stalls++;
  const untimed = p.client.call("machineExec", { machine: "m1", execId: "e2", args: ["true"] });
  const settled = await Promise.race([
    untimed.then(
      () => "answered",
      () => "rejected",
    ),
    Bun.sleep(400).then(() => "waiting"),
  ]);
  expect(settled).toBe("waiting");
  expect(stalls).toBe(0);
  p.close();
  // Closing the session rejects what is still pending.
  await expect(untimed).rejects.toThrow(/connection closed/);
});

test("execs over a lost session end with 255 and a message; execs of other machines go on", async () => {
  const agent = { isOpen: true, call: async () => ({ pid: 7 }), sendIo() {} } as unknown as AgentClient;
  const execs = new MachineExecs(dir, () => agent);
  const req = { machine: "m1", args: ["sleep", "100"], env: [], cwd: "", tty: false, stdin: false, rows: 0, cols: 0 };
  const lost = await execs.create(req);
  const other = await execs.create({ ...req, machine: "m2" });
  const s = connect({ path: lost.socket, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on("data", (d: Buffer) => chunks.push(d));
  const ended = new Promise<void>((r) => s.on("end", () => r()));
  const o = connect({ path: other.socket, allowHalfOpen: true });
  await Bun.sleep(50); // both started (their machineExec answered)
  execs.agentLost("m1");
  await ended;
  expect(await execs.wait(lost.id)).toBe(255);
  const out = Buffer.concat(chunks);
  expect(out[0]).toBe(2); // stderr frame
  expect(out.subarray(8).toString()).toMatch(/lost the connection to the guest agent of machine m1/);
  const otherDone = await Promise.race([execs.wait(other.id).then(() => "ended"), Bun.sleep(100).then(() => "running")]);
  expect(otherDone).toBe("running");
  s.destroy();
  o.destroy();
  execs.machineGone("m2");
});
