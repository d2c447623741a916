/**
 * The guest agent on its own (no vmm): the msgpack-framed protocol over a plain Unix
 * socket, events pushed to every client, protocol errors, and the idle exit.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import type { RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { encodeFrame } from "../../guest/protocol/frames.ts";
import { AgentClient } from "../../services/vmm/core/agent-client.ts";
import { MachineError } from "../../services/vmm/core/machine-error.ts";
import { REPO } from "../helpers/daemon.ts";
import { buildBusyboxRootfs } from "../helpers/test-images.ts";

const home = mkdtempSync("/tmp/arcbox-guest-");
const base = mkdtempSync("/tmp/arcbox-guest-fs-");
const socketPath = join(home, "run", "guest-agent.sock");
let agent: ReturnType<typeof Bun.spawn>;
const id = `ga-${Date.now().toString(36)}`;
/** Stays connected until the last test: the agent exits once it has no client and no container. */
let keeper: Awaited<ReturnType<typeof client>>;

async function dial(): Promise<Socket> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const s = await new Promise<Socket | undefined>((resolve) => {
      const sock = connect(socketPath);
      sock.once("connect", () => resolve(sock));
      sock.once("error", () => resolve(undefined));
    });
    if (s) return s;
    if (Date.now() > deadline) throw new Error("the agent did not come up");
    await Bun.sleep(20);
  }
}

function client(events: RuntimeEvent[] = []) {
  let closed!: () => void;
  const gone = new Promise<void>((r) => (closed = r));
  return dial().then((s) => ({ c: new AgentClient(s, (e) => events.push(e), closed), gone, events }));
}

async function until(what: string, pred: () => boolean) {
  const deadline = Date.now() + 15_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

beforeAll(async () => {
  buildBusyboxRootfs(join(base, "lower"));
  for (const d of ["upper", "work"]) mkdirSync(join(base, d));
  agent = Bun.spawn([process.execPath, join(REPO, "guest", "main.ts"), "--home", home], { stdio: ["ignore", "ignore", "ignore"] });
  keeper = await client();
}, 30_000);

afterAll(async () => {
  agent.kill("SIGKILL");
  await agent.exited;
  rmSync(home, { recursive: true, force: true });
  rmSync(base, { recursive: true, force: true });
});

test("requests, events to every client, errors with their codes", async () => {
  const a = await client();
  const b = await client();
  expect((await a.c.call("containerStates", {})).containers).toEqual([]);
  const bad = await a.c.call("createContainer", { id: "../escape", process: { args: ["true"] }, rootfs: { lowerDirs: ["/x"] } }).catch((e) => e);
  expect(bad).toBeInstanceOf(MachineError);
  expect((bad as MachineError).code).toBe("invalid_argument");
  const missing = await a.c.call("startContainer", { id: "nope" }).catch((e) => e);
  expect((missing as MachineError).code).toBe("not_found");

  await a.c.call("createContainer", {
    id,
    rootfs: { lowerDirs: [join(base, "lower")], upperDir: join(base, "upper"), workDir: join(base, "work") },
    process: { args: ["sh", "-c", "exit 5"] },
  });
  // Calls are answered by id: concurrent ones do not mix up.
  const [states, started] = await Promise.all([b.c.call("containerStates", { ids: [id] }), a.c.call("startContainer", { id })]);
  expect(states.containers[0]!.id).toBe(id);
  expect(started.pid).toBeGreaterThan(0);
  await until("exit events on both clients", () => [a, b].every((x) => x.events.some((e) => e.type === "exit" && e.containerId === id)));
  for (const x of [a, b]) {
    expect(x.events.filter((e) => e.containerId === id).map((e) => [e.type, e.exitCode])).toEqual([
      ["start", 0],
      ["exit", 5],
    ]);
  }
  await a.c.call("deleteContainer", { id });
  a.c.close();
  b.c.close();
  await Promise.all([a.gone, b.gone]);
}, 60_000);

test("a garbage frame closes that connection only; an unknown method is not_implemented", async () => {
  const raw = await dial();
  const closed = new Promise((r) => raw.on("close", r));
  raw.on("error", () => {});
  raw.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3])); // a 4 GiB frame: refused
  await closed;
  const ok = await client();
  const err = await ok.c.call("list" as never, {} as never).catch((e) => e);
  expect((err as MachineError).code).toBe("not_implemented");
  // A frame that is not a request is ignored.
  (ok.c as unknown as { socket: Socket }).socket.write(encodeFrame({ k: "evt", body: new Uint8Array() }));
  expect((await ok.c.call("containerStates", {})).containers).toEqual([]);
  ok.c.close();
  await ok.gone;
}, 30_000);

test("with no containers and no clients left, the agent exits and removes its sockets", async () => {
  const c = await client();
  c.c.close();
  await c.gone;
  expect(agent.exitCode).toBeNull(); // the keeper is still connected
  keeper.c.close();
  expect(await agent.exited).toBe(0);
  expect(existsSync(socketPath)).toBe(false);
  expect(existsSync(join(home, "run", "guest-agent.notify.sock"))).toBe(false);
}, 30_000);
