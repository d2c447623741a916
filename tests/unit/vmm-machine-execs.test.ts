import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { RuntimeEventSchema } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { AgentClient } from "../../services/vmm/core/agent-client.ts";
import { MachineExecs } from "../../services/vmm/core/machine-execs.ts";
import { MachineError } from "../../services/vmm/core/machine-error.ts";

const run = mkdtempSync(join(tmpdir(), "arcbox-mexec-"));
afterAll(() => rmSync(run, { recursive: true, force: true }));

/** A stand-in for a VM's agent: records calls and stdin, and lets the test emit output. */
function fakeAgent() {
  const calls: { method: string; req: Record<string, unknown> }[] = [];
  const stdin: (string | "eof")[] = [];
  let failWith: Error | undefined;
  const agent = {
    isOpen: true,
    async call(method: string, req: Record<string, unknown>) {
      calls.push({ method, req });
      if (failWith) throw failWith;
      return { pid: 42 };
    },
    sendIo(_sid: string, data: Uint8Array | "eof") {
      stdin.push(data === "eof" ? "eof" : Buffer.from(data).toString());
    },
  };
  return { agent: agent as unknown as AgentClient, calls, stdin, fail: (e: Error) => (failWith = e) };
}

function readAll(s: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on("data", (d: Buffer) => chunks.push(d));
  return new Promise((resolve) => s.on("end", () => resolve(Buffer.concat(chunks))));
}

async function dial(path: string): Promise<Socket> {
  const s = connect({ path, allowHalfOpen: true });
  await new Promise<void>((r, j) => s.once("connect", () => r()).once("error", j));
  return s;
}

const exitEvent = (execId: string, exitCode: number) => create(RuntimeEventSchema, { type: "machine_exec_exit", execId, exitCode });
const req = { machine: "m1", args: ["cat"], env: [], cwd: "", tty: false, stdin: true, rows: 24, cols: 80 };

test("without a TTY: multiplexed output, stdin and its EOF, the exit code", async () => {
  const f = fakeAgent();
  const execs = new MachineExecs(run, () => f.agent);
  const { id, socket } = await execs.create(req);
  expect(socket).toBe(join(run, "mexec", `${id}.sock`));
  // Nothing runs before the client is there to read its output.
  expect(f.calls).toEqual([]);
  const s = await dial(socket);
  const out = readAll(s);
  await Bun.sleep(20);
  expect(f.calls[0]?.method).toBe("machineExec");
  expect(f.calls[0]?.req).toMatchObject({ execId: id, args: ["cat"], stdin: true, tty: false });
  s.write("hello");
  s.end();
  await Bun.sleep(20);
  expect(f.stdin).toEqual(["hello", "eof"]);
  execs.onIo({ k: "io", sid: id, fd: 1, data: Buffer.from("out") });
  execs.onIo({ k: "io", sid: id, fd: 2, data: Buffer.from("err!") });
  execs.onEvent(exitEvent(id, 3));
  const bytes = await out;
  expect([...bytes.subarray(0, 8)]).toEqual([1, 0, 0, 0, 0, 0, 0, 3]);
  expect(bytes.subarray(8, 11).toString()).toBe("out");
  expect([...bytes.subarray(11, 19)]).toEqual([2, 0, 0, 0, 0, 0, 0, 4]);
  expect(bytes.subarray(19).toString()).toBe("err!");
  expect(await execs.wait(id)).toBe(3);
  await expect(execs.wait(id)).rejects.toThrow("no such exec");
});

test("with a TTY the bytes are raw; a second client is refused", async () => {
  const f = fakeAgent();
  const execs = new MachineExecs(run, () => f.agent);
  const { id, socket } = await execs.create({ ...req, tty: true });
  const s = await dial(socket);
  const out = readAll(s);
  await Bun.sleep(20);
  await expect(dial(socket)).rejects.toThrow();
  execs.onIo({ k: "io", sid: id, fd: 1, data: Buffer.from("raw\r\n") });
  execs.onEvent(exitEvent(id, 0));
  expect((await out).toString()).toBe("raw\r\n");
  expect(await execs.wait(id)).toBe(0);
});

test("a machine that stops ends its execs with 137; a failed start reports on stderr with 126", async () => {
  const f = fakeAgent();
  const execs = new MachineExecs(run, () => f.agent);
  const a = await execs.create(req);
  const sa = await dial(a.socket);
  const outA = readAll(sa);
  await Bun.sleep(20);
  execs.machineGone("m1");
  await outA;
  expect(await execs.wait(a.id)).toBe(137);

  f.fail(new MachineError("not_found", "exec: /nope: not found"));
  const b = await execs.create(req);
  const sb = await dial(b.socket);
  const out = (await readAll(sb)).subarray(8).toString();
  expect(out).toContain("exec: /nope: not found");
  expect(await execs.wait(b.id)).toBe(126);
});

test("exec into a machine that is not running fails at create", async () => {
  const execs = new MachineExecs(run, () => {
    throw new MachineError("conflict", "machine m1 is not running (it is stopped)");
  });
  await expect(execs.create(req)).rejects.toThrow("machine m1 is not running (it is stopped)");
});
