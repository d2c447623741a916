/**
 * Machine exec through the agent protocol, against the host agent (the same code runs
 * in a VM: tests/integration/vm-guest.test.ts): stdio as io frames, exit codes, stdin and
 * its EOF, a TTY with resize, signals, errors, and Poweroff refused on the host.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AgentSession, machineExec } from "../helpers/agent-session.ts";
import { REPO } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";

const home = mkdtempSync("/tmp/arcbox-mexec-");
let agent: ReturnType<typeof Bun.spawn>;
let s: AgentSession;

beforeAll(async () => {
  agent = Bun.spawn([process.execPath, join(REPO, "guest", "main.ts"), "--home", home], { stdio: ["ignore", "ignore", "inherit"] });
  s = await waitFor("the agent", () => AgentSession.open(join(home, "run", "guest-agent.sock"), { sync: false }).catch(() => undefined));
}, 30_000);

afterAll(async () => {
  s?.close();
  agent.kill("SIGKILL");
  await agent.exited;
  rmSync(home, { recursive: true, force: true });
});

test("stdout, stderr and the exit code come back", async () => {
  const r = await machineExec(s, ["sh", "-c", "echo out; echo err >&2; exit 7"]);
  expect(r).toEqual({ stdout: "out\n", stderr: "err\n", exitCode: 7 });
});

test("stdin reaches the process and its EOF ends it", async () => {
  const r = await machineExec(s, ["sh", "-c", "cat; echo done"], { stdin: "line one\nline two\n" });
  expect(r.stdout).toBe("line one\nline two\ndone\n");
  expect(r.exitCode).toBe(0);
});

test("env and cwd apply; PATH has a default", async () => {
  const r = await machineExec(s, ["sh", "-c", 'echo "$FOO $(pwd)"; command -v sh >/dev/null && echo has-path'], { env: ["FOO=bar"], cwd: "/tmp" });
  expect(r.stdout).toBe("bar /tmp\nhas-path\n");
});

test("a TTY: the process sees a terminal of the requested size, resizable", async () => {
  const r = await machineExec(s, ["sh", "-c", "tty; stty size; read x; stty size"], {
    tty: true,
    rows: 30,
    cols: 100,
    stdin: "",
    onStart: async (id) => {
      await Bun.sleep(300);
      await s.call("machineExecResize", { execId: id, rows: 40, cols: 120 });
      s.sendIo({ sid: id, fd: 0, data: Buffer.from("go\n") });
    },
  });
  const lines = r.stdout.split(/\r?\n/).filter(Boolean);
  expect(lines[0]).toMatch(/^\/dev\/pts\/\d+$/);
  expect(lines).toContain("30 100");
  expect(lines.at(-1)).toBe("40 120");
  expect(r.stderr).toBe("");
});

test("a signal ends the process (128 + signal)", async () => {
  const r = await machineExec(s, ["sleep", "60"], { onStart: (id) => s.call("machineExecSignal", { execId: id, signal: "KILL" }).then(() => {}) });
  expect(r.exitCode).toBe(137);
});

test("errors: unknown command, unknown exec, duplicate id, no args", async () => {
  await expect(s.call("machineExec", { execId: "mx-missing", args: ["/no/such/binary"] })).rejects.toMatchObject({ code: "not_found" });
  await expect(s.call("machineExecSignal", { execId: "mx-nope", signal: "TERM" })).rejects.toMatchObject({ code: "not_found" });
  await expect(s.call("machineExec", { execId: "mx-empty", args: [] })).rejects.toMatchObject({ code: "invalid_argument" });
  await s.call("machineExec", { execId: "mx-dup", args: ["sleep", "30"] });
  await expect(s.call("machineExec", { execId: "mx-dup", args: ["true"] })).rejects.toMatchObject({ code: "already_exists" });
  await s.call("machineExecSignal", { execId: "mx-dup", signal: "KILL" });
  await s.waitEvent((e) => e.type === "machine_exec_exit" && e.execId === "mx-dup");
});

test("Poweroff is refused by the host's agent", async () => {
  await expect(s.call("poweroff", {})).rejects.toMatchObject({ code: "failed_precondition" });
});
