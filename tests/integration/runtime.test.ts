/**
 * The container runtime end to end: vmm run as a standalone service on a throwaway
 * home, MachineService through ServiceClients, the guest agent, the C shim and runc,
 * on a busybox rootfs. (runtime-restart.test.ts covers vmm under the supervisor.)
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import type { RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { REPO } from "../helpers/daemon.ts";
import { buildBusyboxRootfs } from "../helpers/test-images.ts";

/** vmm alone (no supervisor, no apid): the runtime does not depend on them. */
class StandaloneVmm {
  readonly home = mkdtempSync("/tmp/arcbox-runtime-");
  private proc: ReturnType<typeof Bun.spawn> | undefined;

  async start(): Promise<void> {
    mkdirSync(join(this.home, "log"), { recursive: true });
    this.proc = Bun.spawn([process.execPath, join(REPO, "services", "vmm", "main.ts"), "--home", this.home], {
      stdio: ["ignore", Bun.file(join(this.home, "log", "vmm.log")), Bun.file(join(this.home, "log", "vmm.log"))],
    });
    const sock = join(this.home, "run", "vmm.sock");
    const deadline = Date.now() + 30_000;
    while (
      !(await fetch("http://x/", { unix: sock } as RequestInit).then(
        () => true,
        () => false,
      ))
    ) {
      if (Date.now() > deadline || this.proc.exitCode !== null) throw new Error(`vmm did not start: ${readFileSync(join(this.home, "log", "vmm.log"), "utf8")}`);
      await Bun.sleep(25);
    }
  }

  async dispose(): Promise<void> {
    this.proc?.kill("SIGTERM");
    await this.proc?.exited;
    // With no containers left and vmm gone, the agent exits on its own.
    const agentSock = join(this.home, "run", "guest-agent.sock");
    const deadline = Date.now() + 10_000;
    while (existsSync(agentSock) && Date.now() < deadline) await Bun.sleep(25);
    rmSync(this.home, { recursive: true, force: true });
  }
}

const daemon = new StandaloneVmm();
const base = mkdtempSync("/tmp/arcbox-runtime-fs-");
const lower = join(base, "lower");
let clients: ServiceClients;
const machines = () => clients.machines;
const events: RuntimeEvent[] = [];
const eventWaiters = new Set<() => void>();
const abort = new AbortController();
const created = new Set<string>();

/** Subscribes to Events; resolves once vmm confirms the subscription (first, empty message). */
function subscribe(signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    (async () => {
      for await (const r of machines().events({ machine: "host" }, { signal })) {
        if (!r.event) {
          resolve();
          continue;
        }
        events.push(r.event);
        for (const w of eventWaiters) w();
      }
    })().catch(reject);
  });
}

/** Waits (bounded) for an event matching `pred`. */
async function waitEvent(pred: (e: RuntimeEvent) => boolean, timeoutMs = 15_000): Promise<RuntimeEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(pred);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for an event; have ${JSON.stringify(events.map((e) => [e.type, e.containerId, e.execId]))}`);
    await new Promise<void>((resolve) => {
      const w = () => {
        eventWaiters.delete(w);
        resolve();
      };
      eventWaiters.add(w);
      setTimeout(w, 200);
    });
  }
}

let seq = 0;
function rootfs(id: string) {
  const dir = join(base, id);
  mkdirSync(join(dir, "upper"), { recursive: true });
  mkdirSync(join(dir, "work"), { recursive: true });
  return { lowerDirs: [lower], upperDir: join(dir, "upper"), workDir: join(dir, "work") };
}

async function createContainer(args: string[], opts: Record<string, unknown> = {}, process: Record<string, unknown> = {}) {
  const id = `rt${Date.now().toString(36)}${seq++}`;
  created.add(id);
  const res = await machines().createContainer({ machine: "host", id, rootfs: rootfs(id), process: { args, env: [], ...process }, logPath: join(base, `${id}.log`), ...opts });
  return { id, ...res, log: join(base, `${id}.log`) };
}

/**
 * Connects to a stdio socket and collects what it sends until it closes. (Bun's node:net
 * can lose a connection that the peer accepts, writes to and closes at once, so tests
 * connect while the process still runs.)
 */
function attach(path: string) {
  const socket: Socket = connect(path);
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  const closed = new Promise<Buffer>((resolve) => socket.on("close", () => resolve(Buffer.concat(chunks))));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  return { socket, closed, connected };
}

/** Docker's multiplexed stream: [stream, 0, 0, 0, len BE32] + payload. */
function demux(buf: Buffer): { stdout: string; stderr: string } {
  const out = { stdout: "", stderr: "" };
  let i = 0;
  while (i + 8 <= buf.length) {
    const len = buf.readUInt32BE(i + 4);
    const payload = buf.subarray(i + 8, i + 8 + len).toString();
    if (buf[i] === 1) out.stdout += payload;
    else if (buf[i] === 2) out.stderr += payload;
    i += 8 + len;
  }
  return out;
}

function logLines(path: string) {
  return readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
}

async function state(id: string) {
  return (await machines().containerStates({ machine: "host", ids: [id] })).containers[0]!;
}

function runcList(): string {
  const root = join(daemon.home, "data", "vmm", "host", "runc");
  return Bun.spawnSync(["runc", "--root", root, "list", "-q"]).stdout.toString();
}

beforeAll(async () => {
  buildBusyboxRootfs(lower);
  await daemon.start();
  clients = new ServiceClients(arcboxHome(daemon.home));
  await subscribe(abort.signal);
}, 60_000);

afterAll(async () => {
  abort.abort();
  for (const id of created)
    await machines()
      .deleteContainer({ machine: "host", id, force: true })
      .catch(() => {});
  await daemon.dispose();
  rmSync(base, { recursive: true, force: true });
}, 60_000);

describe("runtime", () => {
  test("List shows the host machine", async () => {
    const { items } = await machines().list({});
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({ id: "host", kind: "host", state: "running" });
  });

  test("exit code, streams in the json-file log, Events and ContainerStates", async () => {
    const c = await createContainer(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(c.pid).toBeGreaterThan(0);
    expect((await state(c.id)).status).toBe("created");
    const started = await machines().startContainer({ machine: "host", id: c.id });
    expect(started.pid).toBe(c.pid);
    const exit = await waitEvent((e) => e.type === "exit" && e.containerId === c.id);
    expect(exit.exitCode).toBe(3);
    const startIdx = events.findIndex((e) => e.type === "start" && e.containerId === c.id);
    expect(startIdx).toBeGreaterThanOrEqual(0);
    expect(startIdx).toBeLessThan(events.indexOf(exit));
    const s = await state(c.id);
    expect(s).toMatchObject({ status: "stopped", exitCode: 3, oomKilled: false });
    expect(s.finishedAtUnixNano).toBeGreaterThanOrEqual(s.startedAtUnixNano);
    const lines = logLines(c.log);
    expect(lines.map((l) => [l.stream, l.log])).toEqual([
      ["stdout", "out\n"],
      ["stderr", "err\n"],
    ]);
    expect(lines[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    await machines().deleteContainer({ machine: "host", id: c.id });
    expect((await machines().containerStates({ machine: "host", ids: [c.id] })).containers).toHaveLength(0);
  });

  test("json-file log: Go-style escaping, long lines split, a last line without newline", async () => {
    const c = await createContainer(["sh", "-c", "printf 'q\"b\\\\s\\tt<a>&\\001 \\303\\251\\n'; head -c 20000 /dev/zero | tr '\\0' x; printf '\\nlast'"]);
    await machines().startContainer({ machine: "host", id: c.id });
    await waitEvent((e) => e.type === "exit" && e.containerId === c.id);
    const raw = readFileSync(c.log, "utf8").split("\n").filter(Boolean);
    expect(raw[0]).toContain("\\u003ca\\u003e\\u0026\\u0001");
    const lines = raw.map((l) => JSON.parse(l) as { log: string });
    expect(lines[0]!.log).toBe('q"b\\s\tt<a>&\u0001 é\n');
    // Docker splits lines longer than 16 KiB into several records.
    expect(
      lines
        .slice(1, -1)
        .map((l) => l.log)
        .join(""),
    ).toBe(`${"x".repeat(20000)}\n`);
    expect(lines.length).toBe(4);
    expect(lines.at(-1)!.log).toBe("last");
  });

  test("a TTY container: raw output on the stdio socket, stdout in the log", async () => {
    const c = await createContainer(["sh", "-c", "test -t 0 && echo is-a-tty; stty size"], {}, { tty: true, ttyHeight: 30, ttyWidth: 100 });
    const a = attach(c.stdioSocket);
    await a.connected;
    await machines().startContainer({ machine: "host", id: c.id });
    const raw = (await a.closed).toString();
    expect(raw).toContain("is-a-tty\r\n");
    expect(raw).toContain("30 100");
    expect((await waitEvent((e) => e.type === "exit" && e.containerId === c.id)).exitCode).toBe(0);
    const lines = logLines(c.log);
    expect(lines.every((l) => l.stream === "stdout")).toBe(true);
    expect(lines.map((l) => l.log).join("")).toContain("is-a-tty\r\n");
  });

  test("attach with stdin: input reaches the container, half-close closes its stdin", async () => {
    const c = await createContainer(["sh", "-c", "cat; echo done >&2"], {}, { openStdin: true, stdinOnce: true });
    const a1 = attach(c.stdioSocket);
    const a2 = attach(c.stdioSocket); // a second, output-only client sees the same output
    const a3 = attach(c.stdioSocket); // a reader that goes away entirely: not the stdin owner
    await Promise.all([a1.connected, a2.connected, a3.connected]);
    await machines().startContainer({ machine: "host", id: c.id });
    a3.socket.destroy();
    await a3.closed;
    a1.socket.write("hello ");
    await Bun.sleep(50); // two separate writes, then the half-close
    a1.socket.end("from stdin\n");
    const [o1, o2] = await Promise.all([a1.closed, a2.closed]);
    expect(demux(o1)).toEqual({ stdout: "hello from stdin\n", stderr: "done\n" });
    expect(demux(o2)).toEqual({ stdout: "hello from stdin\n", stderr: "done\n" });
    expect((await waitEvent((e) => e.type === "exit" && e.containerId === c.id)).exitCode).toBe(0);
  });

  test("exec: output on its stdio socket, exit code via exec_exit and ExecState", async () => {
    const c = await createContainer(["sleep", "1000"], { init: true });
    await machines().startContainer({ machine: "host", id: c.id });
    const execId = `${c.id}x1`;
    const script = "echo in-exec; echo e >&2; read line; echo got $line; exit 7";
    await machines().createExec({ machine: "host", containerId: c.id, execId, process: { args: ["sh", "-c", script], openStdin: true, stdinOnce: true } });
    expect(await machines().execState({ machine: "host", execId })).toMatchObject({ running: false, exited: false, containerId: c.id });
    const started = await machines().startExec({ machine: "host", containerId: c.id, execId });
    expect(started.pid).toBeGreaterThan(0);
    // Output produced before the client connects is kept for it (the exec waits for stdin).
    const a = attach(started.stdioSocket);
    await a.connected;
    a.socket.end("hi\n");
    expect(demux(await a.closed)).toEqual({ stdout: "in-exec\ngot hi\n", stderr: "e\n" });
    expect((await waitEvent((e) => e.type === "exec_exit" && e.execId === execId)).exitCode).toBe(7);
    expect(await machines().execState({ machine: "host", execId })).toMatchObject({ running: false, exited: true, exitCode: 7 });
    // docker top: the container's processes (tini and sleep) from the host's ps.
    const top = await machines().top({ machine: "host", id: c.id });
    expect(top.titles).toContain("PID");
    expect(top.processes.map((p) => p.columns.at(-1)).join("\n")).toContain("sleep 1000");
    await machines().killContainer({ machine: "host", id: c.id, signal: "SIGKILL" });
    await waitEvent((e) => e.type === "exit" && e.containerId === c.id);
  });

  test("removing a container ends its exec shims, even one waiting for its first client", async () => {
    const c = await createContainer(["sleep", "1000"]);
    await machines().startContainer({ machine: "host", id: c.id });
    const execId = `${c.id}x2`;
    await machines().createExec({ machine: "host", containerId: c.id, execId, process: { args: ["true"] } });
    const started = await machines().startExec({ machine: "host", containerId: c.id, execId });
    await waitEvent((e) => e.type === "exec_exit" && e.execId === execId);
    const shimPid = Number(readFileSync(join(daemon.home, "data", "vmm", "host", "containers", c.id, "execs", execId, "shim.pid"), "utf8"));
    expect(() => process.kill(shimPid, 0)).not.toThrow(); // holding the output for a client
    await machines().deleteContainer({ machine: "host", id: c.id, force: true });
    const deadline = Date.now() + 10_000;
    while (existsSync(`/proc/${shimPid}/cmdline`) && readFileSync(`/proc/${shimPid}/cmdline`, "utf8").includes(execId) && Date.now() < deadline) await Bun.sleep(20);
    expect(existsSync(`/proc/${shimPid}`) && readFileSync(`/proc/${shimPid}/cmdline`, "utf8").includes(execId)).toBe(false);
    expect(existsSync(started.stdioSocket)).toBe(false);
  });

  test("kill: SIGTERM through tini gives 143, SIGKILL gives 137", async () => {
    const withInit = await createContainer(["sleep", "1000"], { init: true });
    const plain = await createContainer(["sleep", "1000"]);
    await machines().startContainer({ machine: "host", id: withInit.id });
    await machines().startContainer({ machine: "host", id: plain.id });
    await machines().killContainer({ machine: "host", id: withInit.id, signal: "SIGTERM" });
    await machines().killContainer({ machine: "host", id: plain.id, signal: "9" });
    expect((await waitEvent((e) => e.type === "exit" && e.containerId === withInit.id)).exitCode).toBe(143);
    expect((await waitEvent((e) => e.type === "exit" && e.containerId === plain.id)).exitCode).toBe(137);
    const err = await machines()
      .killContainer({ machine: "host", id: plain.id, signal: "SIGTERM" })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
  });

  test("pause and resume", async () => {
    const c = await createContainer(["sleep", "1000"]);
    await machines().startContainer({ machine: "host", id: c.id });
    await machines().pauseContainer({ machine: "host", id: c.id });
    await waitEvent((e) => e.type === "pause" && e.containerId === c.id);
    expect((await state(c.id)).status).toBe("paused");
    expect(readFileSync(`/sys/fs/cgroup/freezer/arcbox/${c.id}/freezer.state`, "utf8").trim()).toBe("FROZEN");
    await machines().resumeContainer({ machine: "host", id: c.id });
    await waitEvent((e) => e.type === "resume" && e.containerId === c.id);
    expect((await state(c.id)).status).toBe("running");
    // A paused/running container is only deleted with force; force kills it.
    const err = await machines()
      .deleteContainer({ machine: "host", id: c.id })
      .catch((e) => e);
    expect((err as ConnectError).code).toBe(Code.FailedPrecondition);
    await machines().deleteContainer({ machine: "host", id: c.id, force: true });
    expect((await waitEvent((e) => e.type === "exit" && e.containerId === c.id)).exitCode).toBe(137);
    expect(existsSync(join(daemon.home, "data", "vmm", "host", "containers", c.id))).toBe(false);
  });

  test("resources: memory limit and pids limit in the cgroup, update changes them", async () => {
    const c = await createContainer(["sleep", "1000"], { resources: { memoryBytes: 64n << 20n, pidsLimit: 50n, cpuShares: 512n } });
    await machines().startContainer({ machine: "host", id: c.id });
    const cg = (ctl: string, file: string) => readFileSync(`/sys/fs/cgroup/${ctl}/arcbox/${c.id}/${file}`, "utf8").trim();
    expect(cg("memory", "memory.limit_in_bytes")).toBe(String(64 << 20));
    // Docker's default: as much swap again as memory.
    if (existsSync("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")) expect(cg("memory", "memory.memsw.limit_in_bytes")).toBe(String(128 << 20));
    expect(cg("pids", "pids.max")).toBe("50");
    expect(cg("cpu", "cpu.shares")).toBe("512");
    await machines().updateContainer({ machine: "host", id: c.id, resources: { memoryBytes: 128n << 20n } });
    expect(cg("memory", "memory.limit_in_bytes")).toBe(String(128 << 20));
    const stats = JSON.parse((await machines().stats({ machine: "host", id: c.id })).statsJson);
    expect(stats.memory_stats.limit).toBe(128 << 20);
    expect(stats.pids_stats.current).toBeGreaterThanOrEqual(1);
    expect(stats.cpu_stats.cpu_usage.total_usage).toBeGreaterThan(0);
    await machines().deleteContainer({ machine: "host", id: c.id, force: true });
  });

  test("user names resolve through the rootfs's passwd; readonly rootfs; hostname; loopback only", async () => {
    const ro = await createContainer(
      ["sh", "-c", "id -u; id -g; echo $HOME; hostname; touch /x 2>/dev/null && echo writable || echo readonly; ls /sys/class/net | tr '\\n' ' '"],
      { hostname: "box1", rootfs: { ...rootfs("ro"), readonly: true } },
      { user: "nobody" },
    );
    await machines().startContainer({ machine: "host", id: ro.id });
    await waitEvent((e) => e.type === "exit" && e.containerId === ro.id);
    const out = logLines(ro.log)
      .map((l) => l.log)
      .join("");
    expect(out).toBe("65534\n65534\n/nonexistent\nbox1\nreadonly\nlo ");
  });

  test("privileged: every capability, host devices, writable sysfs; default: Docker's set", async () => {
    const script =
      "grep CapEff /proc/self/status | cut -f2; ls /dev | grep -c . ; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; grep Seccomp: /proc/self/status | cut -f2; unshare -U true 2>/dev/null && echo userns-ok || echo userns-denied";
    const priv = await createContainer(["sh", "-c", script], {}, { privileged: true });
    const plain = await createContainer(["sh", "-c", script], {}, { capDrop: ["NET_RAW"], capAdd: ["SYS_ADMIN"] });
    const defaults = await createContainer(["sh", "-c", script]);
    for (const c of [priv, plain, defaults]) await machines().startContainer({ machine: "host", id: c.id });
    for (const c of [priv, plain, defaults]) await waitEvent((e) => e.type === "exit" && e.containerId === c.id);
    const [privCaps, privDevs, privSys, privSeccomp, privUserns] = logLines(priv.log).map((l) => l.log.trim());
    const [caps, devs, sys, seccomp, userns] = logLines(plain.log).map((l) => l.log.trim());
    // Every capability the host lets us grant (its bounding set; this sandbox lacks some).
    const bounding = /CapBnd:\s+([0-9a-f]+)/.exec(readFileSync("/proc/self/status", "utf8"))![1]!;
    expect(BigInt(`0x${privCaps}`)).toBe(BigInt(`0x${bounding}`) & ((1n << 41n) - 1n));
    expect(privSys).toBe("rw");
    expect(Number(privDevs)).toBeGreaterThan(Number(devs));
    // Docker's 14 default capabilities, minus NET_RAW (13), plus SYS_ADMIN (21).
    const expected = [0, 1, 3, 4, 5, 6, 7, 8, 10, 18, 21, 27, 29, 31].reduce((m, b) => m | (1n << BigInt(b)), 0n);
    expect(BigInt(`0x${caps}`)).toBe(expected);
    expect(sys).toBe("ro");
    // Docker's default seccomp filter applies unless privileged; CAP_SYS_ADMIN unlocks
    // namespace creation, which it denies by default.
    expect([privSeccomp, privUserns]).toEqual(["0", "userns-ok"]);
    expect([seccomp, userns]).toEqual(["2", "userns-ok"]);
    const [, , , defSeccomp, defUserns] = logLines(defaults.log).map((l) => l.log.trim());
    expect([defSeccomp, defUserns]).toEqual(["2", "userns-denied"]);
  });

  test("out of memory: oom_killed in the exit status and an oom event", async () => {
    const mem = 16n << 20n;
    const c = await createContainer(["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"], { resources: { memoryBytes: mem, memorySwapBytes: mem } });
    await machines().startContainer({ machine: "host", id: c.id });
    const exit = await waitEvent((e) => e.type === "exit" && e.containerId === c.id, 60_000);
    expect(exit.oomKilled).toBe(true);
    expect(exit.exitCode).toBe(137);
    expect(events.some((e) => e.type === "oom" && e.containerId === c.id)).toBe(true);
    expect((await state(c.id)).oomKilled).toBe(true);
  });

  test("TTY resize reaches the container's pty", async () => {
    const c = await createContainer(["sh", "-c", "read line; stty size"], {}, { tty: true, openStdin: true, ttyHeight: 24, ttyWidth: 80 });
    const a = attach(c.stdioSocket);
    await a.connected;
    await machines().startContainer({ machine: "host", id: c.id });
    await machines().resizeTty({ machine: "host", id: c.id, height: 41, width: 123 });
    a.socket.write("go\r");
    expect((await a.closed).toString()).toContain("41 123");
  });

  test("binds, tmpfs, hosts/resolv.conf/hostname files, joining another container's network", async () => {
    const shared = join(base, "shared");
    mkdirSync(shared, { recursive: true });
    await Bun.write(join(shared, "greeting"), "hi from the host\n");
    const files = join(base, "netfiles");
    mkdirSync(files, { recursive: true });
    await Bun.write(join(files, "hosts"), "127.0.0.1 localhost\n10.9.9.9 magic-host\n");
    await Bun.write(join(files, "resolv.conf"), "nameserver 10.9.9.53\n");
    await Bun.write(join(files, "hostname"), "netbox\n");
    const owner = await createContainer(["sleep", "1000"], { hostname: "netbox" });
    await machines().startContainer({ machine: "host", id: owner.id });
    const c = await createContainer(
      ["sh", "-c", "cat /data/greeting; echo written > /data/out; grep magic /etc/hosts; cat /etc/resolv.conf /etc/hostname; grep ' /scratch ' /proc/mounts | cut -d' ' -f3; readlink /proc/1/ns/net"],
      {
        mounts: [
          { destination: "/data", type: "bind", source: shared, options: ["rw"] },
          { destination: "/scratch", type: "tmpfs", source: "tmpfs", options: ["size=1m"] },
        ],
        hostsPath: join(files, "hosts"),
        resolvConfPath: join(files, "resolv.conf"),
        hostnamePath: join(files, "hostname"),
        joinNetnsOf: `container:${owner.id}`,
      },
    );
    await machines().startContainer({ machine: "host", id: c.id });
    expect((await waitEvent((e) => e.type === "exit" && e.containerId === c.id)).exitCode).toBe(0);
    const lines = logLines(c.log).map((l) => l.log.trimEnd());
    expect(lines.slice(0, 5)).toEqual(["hi from the host", "10.9.9.9 magic-host", "nameserver 10.9.9.53", "netbox", "tmpfs"]);
    expect(lines[5]).toBe(readlinkSync(`/proc/${owner.pid}/ns/net`));
    expect(readFileSync(join(shared, "out"), "utf8")).toBe("written\n");
    await machines().deleteContainer({ machine: "host", id: owner.id, force: true });
  });

  test("deleting a created (never started) container: no events, nothing left", async () => {
    const c = await createContainer(["echo", "never"]);
    const dir = join(daemon.home, "data", "vmm", "host", "containers", c.id);
    expect(existsSync(join(dir, "bundle", "config.json"))).toBe(true);
    await machines().deleteContainer({ machine: "host", id: c.id });
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(c.stdioSocket)).toBe(false);
    expect(runcList()).not.toContain(c.id);
    expect(readFileSync("/proc/mounts", "utf8")).not.toContain(c.id);
    // Another container's exit proves the stream has flowed past that point.
    const probe = await createContainer(["true"]);
    await machines().startContainer({ machine: "host", id: probe.id });
    await waitEvent((e) => e.type === "exit" && e.containerId === probe.id);
    expect(events.filter((e) => e.containerId === c.id)).toEqual([]);
    expect(readFileSync(c.log, "utf8")).toBe("");
  });

  test("a failed create leaves nothing behind and says why", async () => {
    const missing = await createContainer(["/no/such/binary"]).catch((e) => e);
    expect(missing).toBeInstanceOf(ConnectError);
    expect((missing as ConnectError).code).toBe(Code.NotFound);
    expect((missing as ConnectError).rawMessage).toMatch(/no such file or directory|not found/);
    const notExec = await createContainer(["/etc/passwd"]).catch((e) => e);
    expect((notExec as ConnectError).code).toBe(Code.PermissionDenied);
    expect((notExec as ConnectError).rawMessage).toContain("permission denied");
    const notInPath = await createContainer(["nosuchcommand"]).catch((e) => e);
    expect((notInPath as ConnectError).code).toBe(Code.NotFound);
    expect((notInPath as ConnectError).rawMessage).toContain("executable file not found");
    const mounts = readFileSync("/proc/mounts", "utf8");
    const failed = [...created].slice(-3);
    for (const id of failed) {
      expect(mounts).not.toContain(id);
      expect(runcList()).not.toContain(id);
      expect(existsSync(join(daemon.home, "data", "vmm", "host", "containers", id))).toBe(false);
      expect(existsSync(`/sys/fs/cgroup/memory/arcbox/${id}`)).toBe(false);
    }
  });
});
