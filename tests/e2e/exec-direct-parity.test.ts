/**
 * The shim's direct exec against `runc exec`, side by side: a second daemon runs with
 * ARCBOX_EXEC_VIA_RUNC=1, and the same execs in the same kind of container must leave
 * the process in the same state (identity, capabilities, seccomp, signal dispositions,
 * umask, open fds, env, cwd, namespaces shared with the init, TTY).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";

let reg: TestRegistry;
let direct: TestDaemon;
let viaRunc: TestDaemon;
let IMG: string;

beforeAll(async () => {
  reg = await startRegistry();
  IMG = (await pushBusybox(reg)).reference;
  direct = new TestDaemon("arcbox-exec-direct-");
  viaRunc = new TestDaemon("arcbox-exec-runc-");
  await direct.start();
  const r = await viaRunc.arcbox(["start"], { env: { ARCBOX_EXEC_VIA_RUNC: "1" } });
  if (r.code !== 0) throw new Error(`arcbox start failed: ${r.stderr}`);
  for (const d of [direct, viaRunc]) {
    const pull = await d.docker(["pull", "-q", IMG]);
    if (pull.code !== 0) throw new Error(`pull failed: ${pull.stderr}`);
  }
}, 120_000);

afterAll(async () => {
  for (const d of [direct, viaRunc]) {
    const ids = (await d?.docker(["ps", "-aq"]))?.stdout.split("\n").filter(Boolean) ?? [];
    if (ids.length) await d.docker(["rm", "-f", ...ids]);
    await d?.dispose();
  }
  await reg?.stop();
}, 60_000);

const STATE =
  "grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp|Seccomp_filters|SigBlk|SigIgn|SigCgt):' /proc/self/status; " +
  "echo umask $(umask); echo fds $(ls /proc/self/fd | sort | tr '\\n' ' '); echo cwd $(pwd); env | grep -v ^HOSTNAME= | sort; " +
  'for n in cgroup ipc mnt net pid uts; do [ "$(readlink /proc/1/ns/$n)" = "$(readlink /proc/self/ns/$n)" ] && echo same $n || echo other $n; done 2>/dev/null';

async function both(name: string, runOpts: string[], execOpts: string[], cmd: string[]): Promise<[string, string]> {
  const out: string[] = [];
  for (const d of [direct, viaRunc]) {
    if ((await d.docker(["inspect", name])).code !== 0) {
      const r = await d.docker(["run", "-d", "--name", name, "--network", "none", ...runOpts, IMG, "sleep", "100000"]);
      if (r.code !== 0) throw new Error(`run failed: ${r.stderr}`);
    }
    const r = await d.docker(["exec", ...execOpts, name, ...cmd]);
    out.push(`exit ${r.code}\n${r.stdout}${r.stderr}`);
  }
  return [out[0]!, out[1]!];
}

describe("direct exec matches runc exec", () => {
  for (const [label, runOpts, execOpts] of [
    ["default", [], []],
    ["exec as another user", [], ["-u", "nobody"]],
    ["numeric user and group", [], ["-u", "1000:1000"]],
    ["container user, dropped and added caps", ["-u", "1000", "--cap-drop", "ALL", "--cap-add", "NET_RAW"], []],
    ["privileged exec in a plain container", [], ["--privileged"]],
    ["privileged container", ["--privileged"], []],
    ["cwd and env", ["-e", "A=1", "-w", "/etc"], ["-e", "B=2", "-w", "/tmp"]],
  ] as [string, string[], string[]][]) {
    test(label, async () => {
      const name = label.replace(/[^a-z]+/g, "-");
      const [d, r] = await both(name, runOpts, execOpts, ["sh", "-c", STATE]);
      expect(d).toContain("Seccomp:");
      expect(d).toBe(r);
    });
  }

  test("errors: not found, not executable, bad cwd", async () => {
    for (const [execOpts, cmd] of [
      [[], ["nope"]],
      [[], ["/etc/passwd"]],
      [["-w", "/nowhere"], ["true"]],
    ] as [string[], string[]][]) {
      const [d, r] = await both("errors", [], execOpts, cmd);
      expect(d.split("\n")[0]).toBe(r.split("\n")[0]!); // the exit code
      expect(d.split("\n")[0]).not.toBe("exit 0");
    }
  });

  test("a TTY: same terminal settings and stdio", async () => {
    const [d, r] = await both("tty", [], ["-t"], ["sh", "-c", `tty; stty -a | head -1; ls -l /proc/self/fd/0 | sed 's/.*-> //'; ${STATE}`]);
    expect(d).toBe(r);
  });
});
