/**
 * Streams as Docker serves them: detach keys (ctrl-p,ctrl-q, --detach-keys, the
 * detachKeys query and exec DetachKeys) for attach and exec under a real terminal,
 * exec -d, streams whose client went away (events, logs -f, wait) releasing what the
 * server held, kill returning once a SIGKILL has stopped the container, commit of a
 * running container (paused meanwhile unless pause=false), volume prune by API version,
 * and attach over a WebSocket.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { connect } from "node:net";
import { join } from "node:path";
import { run, type TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-compat-streams-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

async function must(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

const status = async (name: string) => must(["inspect", "-f", "{{.State.Status}}", name]);

/**
 * Runs a docker command under a pseudo-terminal (Python's pty), waits for the shell,
 * types a command, then the detach keys, and reports the CLI's exit status and output.
 */
const PTY_DRIVER = `
import os, pty, sys, time, select
keys = bytes.fromhex(sys.argv[1]); argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b""
def pump(t, until=None):
    global out
    end = time.time() + t
    while time.time() < end and not (until and until in out):
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                d = os.read(fd, 4096)
            except OSError:
                return
            if not d:
                return
            out += d
pump(20, b"# ")
os.write(fd, b"echo marker-$((40+2))\\r")
pump(20, b"marker-42")
pump(0.3)
os.write(fd, keys)
status = None
deadline = time.time() + 20
while time.time() < deadline and status is None:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(st)
    else:
        pump(0.1)
print(status)
sys.stdout.write(out.decode("utf-8", "replace"))
`;

async function ptyDetach(keys: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const r = await run(["python3", "-c", PTY_DRIVER, Buffer.from(keys, "latin1").toString("hex"), "docker", "-H", d.dockerHost, ...args], { timeoutMs: 60_000 });
  const [first, ...rest] = r.stdout.split("\n");
  return { code: first === "None" ? null : Number(first), output: rest.join("\n") };
}

/** apid's debug state (run/apid.debug.sock): event listeners, container waiters, log followers. */
async function apidState(): Promise<{ eventListeners: number; containerWaiters: number; logFollowers: number }> {
  const res = await fetch("http://apid/state", { unix: join(d.home, "run", "apid.debug.sock") } as RequestInit);
  return (await res.json()) as { eventListeners: number; containerWaiters: number; logFollowers: number };
}

/** Polls the debug state (a test, not the daemon) until `ok`, for at most `ms`; returns how long it took. */
async function within(ms: number, ok: (s: Awaited<ReturnType<typeof apidState>>) => boolean): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (ok(await apidState())) return Date.now() - t0;
    if (Date.now() - t0 > ms) throw new Error(`state not reached in ${ms} ms: ${JSON.stringify(await apidState())}`);
    await Bun.sleep(20);
  }
}

/** A hijacked attach on a raw socket: returns what the server sent, once it closed (or after `ms`). */
function rawAttach(path: string, send: (write: (b: string) => void) => Promise<void>, ms = 10_000): Promise<{ head: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(d.socket);
    let data = "";
    let closed = false;
    const timer = setTimeout(() => (s.destroy(), resolve({ head: data, closed })), ms);
    s.on("data", (b) => (data += b.toString("latin1")));
    s.on("error", reject);
    s.on("close", () => {
      closed = true;
      clearTimeout(timer);
      resolve({ head: data, closed });
    });
    s.write(`POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    void send((b) => s.write(b, "latin1")).catch(reject);
  });
}

describe("detach keys", () => {
  test("docker run -it: ctrl-p,ctrl-q detaches, the CLI exits 0 and the shell runs on; attach and --detach-keys likewise", async () => {
    const r = await ptyDetach("\x10\x11", ["run", "-it", "--name", "dk", "--network", "none", IMG, "sh"]);
    expect(r.output).toContain("marker-42");
    expect(r.code).toBe(0);
    expect(await status("dk")).toBe("running");
    // The shell still answers: its stdin was not closed by the detach.
    const again = await ptyDetach("\x10\x11", ["attach", "dk"]);
    expect(again.output).toContain("marker-42");
    // The docker CLI itself reports a detached `attach` as "read escape sequence" (exit 1), as with dockerd.
    expect(again.output).toContain("read escape sequence");
    expect(await status("dk")).toBe("running");
    const custom = await ptyDetach("\x18x", ["run", "-it", "--detach-keys", "ctrl-x,x", "--name", "dk2", "--network", "none", IMG, "sh"]);
    expect(custom.code).toBe(0);
    expect(await status("dk2")).toBe("running");
  }, 120_000);

  test("docker exec -it: the detach keys leave the exec's shell running", async () => {
    await must(["run", "-d", "--name", "dke", "--network", "none", IMG, "sleep", "100000"]);
    const r = await ptyDetach("\x10\x11", ["exec", "-it", "dke", "sh"]);
    expect(r.output).toContain("marker-42");
    expect(r.code).not.toBeNull();
    const ps = await must(["exec", "dke", "ps", "-o", "comm"]);
    expect(ps.split("\n").filter((l) => l.trim() === "sh")).toHaveLength(1);
  }, 120_000);

  test("detachKeys on a raw attach: the server ends the session on them, emits detach, the container runs on; bad keys are a 400", async () => {
    await must(["run", "-dit", "--name", "dkr", "--network", "none", IMG, "sh"]);
    const since = Math.floor(Date.now() / 1000) - 1;
    const r = await rawAttach("/containers/dkr/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x,x", async (write) => {
      await Bun.sleep(300);
      write("echo raw-$((1+2))\n");
      await Bun.sleep(500);
      write("\x18x");
    });
    expect(r.head).toStartWith("HTTP/1.1 101 UPGRADED");
    expect(r.head).toContain("raw-3");
    expect(r.closed).toBe(true);
    expect(await status("dkr")).toBe("running");
    const events = await d.api(`/events?since=${since}&until=${Math.floor(Date.now() / 1000) + 1}&filters=${encodeURIComponent(JSON.stringify({ container: ["dkr"] }))}`);
    const actions = (await events.text())
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { Action: string }).Action);
    expect(actions).toContain("detach");
    const bad = await d.api("/containers/dkr/attach?stream=1&stdout=1&detachKeys=ctrl-%3F", { method: "POST" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toBe("Invalid detach keys (ctrl-?) provided");
    const badExec = await d.api("/containers/dkr/exec", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ Cmd: ["true"], DetachKeys: "ctrl-aa" }) });
    expect(badExec.status).toBe(400);
    expect(((await badExec.json()) as { message: string }).message).toBe("Invalid escape keys (ctrl-aa) provided");
  }, 60_000);
});

describe("exec -d", () => {
  test("returns at once with exit 0 and the process runs on in the container", async () => {
    await must(["run", "-d", "--name", "xd", "--network", "none", IMG, "sleep", "100000"]);
    const t0 = Date.now();
    const r = await d.docker(["exec", "-d", "xd", "sh", "-c", "echo started > /tmp/flag; sleep 5"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("");
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(await must(["exec", "xd", "cat", "/tmp/flag"])).toBe("started");
    expect(await must(["exec", "xd", "ps", "-o", "args"])).toContain("sleep 5");
  }, 60_000);
});

describe("exec start's body", () => {
  /**
   * An upgraded `exec -i` start whose JSON body travels apart from the headers, as the
   * docker CLI sends it (Go flushes the headers first): `writes` are sent with a pause
   * between them, stdin after the 101, then a half-close. Returns the stdout payload.
   */
  function execStdin(id: string, writes: (hdr: string, body: string) => string[], stdin: string, gapMs = 150): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = connect(d.socket);
      const chunks: Buffer[] = [];
      let upgraded = false;
      s.on("data", (b: Buffer) => {
        chunks.push(b);
        if (!upgraded && Buffer.concat(chunks).includes("\r\n\r\n")) {
          upgraded = true;
          s.end(stdin);
        }
      });
      s.on("error", reject);
      s.on("close", () => {
        const all = Buffer.concat(chunks);
        const end = all.indexOf("\r\n\r\n");
        if (!all.subarray(0, end).toString().startsWith("HTTP/1.1 101")) return reject(new Error(all.toString()));
        let out = "";
        for (let i = end + 4; i + 8 <= all.length; i += 8 + all.readUInt32BE(i + 4)) if (all[i] === 1) out += all.subarray(i + 8, i + 8 + all.readUInt32BE(i + 4)).toString();
        resolve(out);
      });
      const body = `${JSON.stringify({ Detach: false, Tty: false })}\n`;
      const hdr = `POST /v1.50/exec/${id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`;
      void (async () => {
        for (const w of writes(hdr, body)) {
          if (upgraded) return reject(new Error("upgraded before the whole body was sent"));
          s.write(w);
          await Bun.sleep(gapMs);
        }
      })();
    });
  }

  test("a body sent after the headers is read as the body and never reaches the process's stdin", async () => {
    await must(["run", "-d", "--name", "xbody", "--network", "none", IMG, "sleep", "100000"]);
    const create = async () => {
      const res = await d.api("/containers/xbody/exec", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ Cmd: ["cat"], AttachStdin: true, AttachStdout: true, AttachStderr: true }),
      });
      return ((await res.json()) as { Id: string }).Id;
    };
    // The body in a second write (the docker CLI's way), then split inside the body.
    for (const gap of [1, 20, 150]) expect(await execStdin(await create(), (hdr, body) => [hdr, body], "piped\n", gap)).toBe("piped\n");
    expect(await execStdin(await create(), (hdr, body) => [hdr + body.slice(0, 7), body.slice(7)], "piped\n")).toBe("piped\n");
    // And the CLI itself.
    const cli = await d.docker(["exec", "-i", "xbody", "cat"], { stdin: "from-cli\n" });
    expect(cli).toMatchObject({ code: 0, stdout: "from-cli\n" });
    await must(["rm", "-f", "xbody"]);
  }, 60_000);
});

describe("cancelled streams", () => {
  test("killing docker events, logs -f and wait releases the server's subscriptions within a second", async () => {
    await must(["run", "-d", "--name", "cs", "--network", "none", IMG, "sh", "-c", "while true; do echo tick; sleep 1; done"]);
    const base = await apidState();
    const clients = [
      Bun.spawn(["docker", "-H", d.dockerHost, "events"], { stdout: "ignore", stderr: "ignore" }),
      Bun.spawn(["docker", "-H", d.dockerHost, "logs", "-f", "cs"], { stdout: "ignore", stderr: "ignore" }),
      Bun.spawn(["docker", "-H", d.dockerHost, "wait", "cs"], { stdout: "ignore", stderr: "ignore" }),
    ];
    await within(10_000, (s) => s.eventListeners === base.eventListeners + 1 && s.logFollowers === base.logFollowers + 1 && s.containerWaiters > base.containerWaiters + 1);
    for (const c of clients) c.kill("SIGKILL");
    const took = await within(1000, (s) => s.eventListeners === base.eventListeners && s.logFollowers === base.logFollowers && s.containerWaiters === base.containerWaiters);
    expect(took).toBeLessThan(1000);
  }, 60_000);

  test("a cancelled events call returns within a second (python3-docker)", async () => {
    const py = await run(
      [
        "/usr/bin/python3",
        "-c",
        `
import docker, threading, time
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
ev = c.events(decode=True)
t0 = time.time()
threading.Timer(0.3, ev.close).start()
for _ in ev:
    pass
print(round(time.time() - t0, 2))
`,
      ],
      { timeoutMs: 30_000 },
    );
    expect(py.stderr).toBe("");
    expect(Number(py.stdout.trim())).toBeLessThan(1.3);
  }, 60_000);
});

describe("kill", () => {
  test("POST /kill returns once SIGKILL has stopped the container: inspect right after says exited 137", async () => {
    for (let i = 0; i < 5; i++) {
      await must(["run", "-d", "--name", `k${i}`, "--network", "none", IMG, "sleep", "100000"]);
      // Raw API calls back to back: nothing between the 204 and the inspect but the next request.
      expect((await d.api(`/containers/k${i}/kill`, { method: "POST" })).status).toBe(204);
      const state = ((await (await d.api(`/containers/k${i}/json`)).json()) as { State: { Status: string; Running: boolean; ExitCode: number } }).State;
      expect([state.Status, state.Running, state.ExitCode]).toEqual(["exited", false, 137]);
    }
    await must(["run", "-d", "--name", "kcli", "--network", "none", IMG, "sleep", "100000"]);
    await must(["kill", "kcli"]);
    expect(await must(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "kcli"])).toBe("exited 137");
    // Other signals return once delivered; the process decides what to do with them.
    await must(["run", "-d", "--name", "kusr", "--network", "none", IMG, "sh", "-c", "trap 'echo got-usr1' USR1; while true; do sleep 0.1; done"]);
    await must(["kill", "-s", "USR1", "kusr"]);
    expect(await status("kusr")).toBe("running");
  }, 120_000);
});

describe("commit of a running container", () => {
  test("pauses it meanwhile (pause, commit, unpause events), and pause=false does not; the image has the change", async () => {
    await must(["run", "-d", "--name", "cr", "--network", "none", IMG, "sleep", "100000"]);
    await must(["exec", "cr", "sh", "-c", "echo kept > /committed"]);
    const since = Math.floor(Date.now() / 1000) - 1;
    await must(["commit", "cr", "cr-img:1"]);
    expect(await status("cr")).toBe("running");
    const noPause = await d.api("/commit?container=cr&repo=cr-img&tag=2&pause=false", { method: "POST" });
    expect(noPause.status).toBe(201);
    const events = await d.api(`/events?since=${since}&until=${Math.floor(Date.now() / 1000) + 1}&filters=${encodeURIComponent(JSON.stringify({ container: ["cr"] }))}`);
    const actions = (await events.text())
      .trim()
      .split("\n")
      .map((l) => (JSON.parse(l) as { Action: string }).Action);
    expect(actions.filter((a) => ["pause", "unpause", "commit"].includes(a))).toEqual(["pause", "commit", "unpause", "commit"]);
    expect(await must(["run", "--rm", "--network", "none", "cr-img:1", "cat", "/committed"])).toBe("kept");
    expect(await must(["run", "--rm", "--network", "none", "cr-img:2", "cat", "/committed"])).toBe("kept");
  }, 60_000);
});

describe("answers by API version", () => {
  test("volume prune removes named volumes below API 1.42 (all by default), only anonymous ones from 1.42", async () => {
    await must(["volume", "create", "keep-me"]);
    const now = (await (await d.api("/v1.50/volumes/prune", { method: "POST" })).json()) as { VolumesDeleted: string[] };
    expect(now.VolumesDeleted ?? []).not.toContain("keep-me");
    expect(await must(["volume", "ls", "-q"])).toContain("keep-me");
    const old = (await (await d.api("/v1.41/volumes/prune", { method: "POST" })).json()) as { VolumesDeleted: string[] };
    expect(old.VolumesDeleted).toContain("keep-me");
    expect(await must(["volume", "ls", "-q"])).not.toContain("keep-me");
  }, 60_000);
});

describe("Docker's wording and media types", () => {
  test("exec, attach and rename refusals as dockerd words them", async () => {
    await must(["run", "--name", "wst", "--network", "none", IMG, "true"]);
    const id = await must(["inspect", "-f", "{{.Id}}", "wst"]);
    const exec = await d.api("/containers/wst/exec", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ Cmd: ["true"] }) });
    expect(exec.status).toBe(409);
    expect(((await exec.json()) as { message: string }).message).toBe(`Container ${id} is not running`);
    await must(["run", "-d", "--name", "wpa", "--network", "none", IMG, "sleep", "100000"]);
    await must(["pause", "wpa"]);
    const pausedExec = await d.api("/containers/wpa/exec", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ Cmd: ["true"] }) });
    expect(((await pausedExec.json()) as { message: string }).message).toBe("Container wpa is paused, unpause the container before exec");
    const pausedAttach = await d.api("/containers/wpa/attach?stream=1&stdout=1", { method: "POST" });
    expect(pausedAttach.status).toBe(409);
    expect(((await pausedAttach.json()) as { message: string }).message).toBe("container wpa is paused, unpause the container before attach");
    await must(["unpause", "wpa"]);
    const same = await d.api("/containers/wpa/rename?name=wpa", { method: "POST" });
    expect(same.status).toBe(400);
    expect(((await same.json()) as { message: string }).message).toBe("Renaming a container with the same name as its current name");
    const taken = await d.api("/containers/wpa/rename?name=wst", { method: "POST" });
    expect(taken.status).toBe(409);
    expect(((await taken.json()) as { message: string }).message).toStartWith('Error when allocating new name: Conflict. The container name "/wst" is already in use');
  }, 60_000);

  test("attach and exec streams without a TTY are multiplexed-stream from API 1.42, raw-stream before", async () => {
    await must(["run", "-d", "--name", "wmt", "--network", "none", IMG, "sh", "-c", "echo out; sleep 100000"]);
    const head = async (path: string) => (await rawAttach(path, async () => {}, 1500)).head.split("\r\n").find((l) => l.startsWith("Content-Type:"));
    expect(await head("/v1.50/containers/wmt/attach?stream=1&stdout=1")).toBe("Content-Type: application/vnd.docker.multiplexed-stream");
    expect(await head("/v1.41/containers/wmt/attach?stream=1&stdout=1")).toBe("Content-Type: application/vnd.docker.raw-stream");
  }, 60_000);
});

describe("exec output under load", () => {
  /** Payloads by stream of a multiplexed body. */
  function demux(body: Buffer): Record<number, string> {
    const out: Record<number, string> = { 1: "", 2: "" };
    for (let i = 0; i + 8 <= body.length; ) {
      const n = body.readUInt32BE(i + 4);
      out[body[i]!] = (out[body[i]!] ?? "") + body.subarray(i + 8, i + 8 + n).toString();
      i += 8 + n;
    }
    return out;
  }

  /** An upgraded exec start read to its end by a client that takes every byte after the headers. */
  function execRaw(id: string): Promise<Record<number, string>> {
    return new Promise((resolve, reject) => {
      const s = connect(d.socket);
      const chunks: Buffer[] = [];
      s.on("data", (b: Buffer) => chunks.push(b));
      s.on("error", reject);
      s.on("close", () => {
        const all = Buffer.concat(chunks);
        const end = all.indexOf("\r\n\r\n");
        if (!all.subarray(0, end).toString().startsWith("HTTP/1.1 101")) return reject(new Error(all.toString()));
        resolve(demux(all.subarray(end + 4)));
      });
      const body = JSON.stringify({ Detach: false, Tty: false });
      s.write(`POST /exec/${id}/start HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n${body}`);
    });
  }

  test("60 concurrent execs each deliver both stdout and stderr, to a raw client and to the docker CLI", async () => {
    await must(["run", "-d", "--name", "load", "--network", "none", IMG, "sleep", "100000"]);
    const cmd = ["sh", "-c", "echo hello out; echo hello err >&2"];
    const raw = await Promise.all(
      Array.from({ length: 60 }, async () => {
        const res = await d.api("/containers/load/exec", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ Cmd: cmd, AttachStdout: true, AttachStderr: true }),
        });
        return execRaw(((await res.json()) as { Id: string }).Id);
      }),
    );
    expect(raw.filter((o) => o[1] !== "hello out\n" || o[2] !== "hello err\n")).toEqual([]);
    const cli = await Promise.all(Array.from({ length: 30 }, () => d.docker(["exec", "load", ...cmd])));
    expect(cli.filter((r) => r.code !== 0 || r.stdout !== "hello out\n" || r.stderr !== "hello err\n")).toEqual([]);
  }, 120_000);

  test("python3-docker's exec_run (headers read through a buffer) loses nothing: output waits until the client has read the upgrade", async () => {
    // python3-docker takes the raw socket after http.client has read the 101 headers
    // through its buffer: whatever arrived with them used to be lost (hello err alone).
    const py = await run(
      [
        "/usr/bin/python3",
        "-c",
        `
import docker, concurrent.futures as cf
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)}).containers.get("load")
def one(_):
    return c.exec_run(["sh", "-c", "echo hello out; echo hello err >&2"], demux=True).output
with cf.ThreadPoolExecutor(40) as ex:
    outs = list(ex.map(one, range(120)))
bad = [o for o in outs if o != (b"hello out\\n", b"hello err\\n")]
print(len(outs), len(bad), bad[:3])
`,
      ],
      { timeoutMs: 110_000 },
    );
    expect(py.stderr).toBe("");
    expect(py.stdout.trim()).toBe("120 0 []");
  }, 120_000);
});

/**
 * GET /containers/{id}/attach/ws: attach over a WebSocket, as dockerd serves it. The
 * client is python3-websocket (the library docker-py's attach_socket(ws=True) uses),
 * connected through the Docker socket: stdin from its messages, output as messages,
 * never multiplexed, binary frames from API 1.28 and text before, a close frame when
 * the container's output ends.
 */
/**
 * Opens the WebSocket on the Docker socket, sends each of `send` as a text message,
 * then reads messages until the server closes (or `want` bytes arrived), and prints
 * JSON: the opcodes and bytes received, and whether a close frame came.
 */
const WS_CLIENT = `
import json, socket, sys, websocket
sock_path, path, send, want = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(sock_path)
ws = websocket.create_connection("ws://localhost" + path, socket=s, timeout=30)
for m in send: ws.send(m)
ops, data, closed = [], b"", False
while True:
    op, chunk = ws.recv_data(control_frame=True)
    if op == websocket.ABNF.OPCODE_CLOSE:
        closed = True; break
    ops.append(op); data += chunk
    if want and len(data) >= want: break
print(json.dumps({"ops": sorted(set(ops)), "data": data.decode("latin-1"), "closed": closed}))
`;

async function wsSession(path: string, send: string[] = [], want = 0): Promise<{ ops: number[]; data: string; closed: boolean }> {
  const r = await run(["/usr/bin/python3", "-c", WS_CLIENT, d.socket, path, JSON.stringify(send), String(want)], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`ws client failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

test("attach/ws: stdin in, output out: raw bytes in binary messages, not Docker's stream frames", async () => {
  const id = await must(["run", "-d", "-i", IMG, "cat"]);
  try {
    const r = await wsSession(`/v1.50/containers/${id}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1`, ["hello\n"], 6);
    expect(r).toEqual({ ops: [2], data: "hello\n", closed: false });
  } finally {
    await d.docker(["rm", "-f", id]);
  }
});

test("attach/ws: logs=1 replays stdout and stderr unframed; without stream=1 the session then closes", async () => {
  const id = await must(["run", "-d", IMG, "sh", "-c", "echo out; echo err >&2"]);
  try {
    await must(["wait", id]);
    const replay = await wsSession(`/v1.50/containers/${id}/attach/ws?logs=1&stdout=1&stderr=1`);
    expect(replay.closed).toBe(true);
    expect(replay.data.split("\n").sort()).toEqual(["", "err", "out"]);
    const onlyErr = await wsSession(`/v1.50/containers/${id}/attach/ws?logs=1&stderr=1`);
    expect(onlyErr).toEqual({ ops: [2], data: "err\n", closed: true });
    // Before API 1.28 dockerd sent text frames; before 1.42 it attached every stream
    // whatever the query asked.
    const old = await wsSession(`/v1.27/containers/${id}/attach/ws?logs=1&stdout=1`);
    expect({ ...old, data: old.data.split("\n").sort() }).toEqual({ ops: [1], data: ["", "err", "out"], closed: true });
  } finally {
    await d.docker(["rm", "-f", id]);
  }
});

test("attach/ws: a running container's exit ends the session with a close frame", async () => {
  const id = await must(["run", "-d", "-i", IMG, "sh", "-c", "read line; echo got $line"]);
  try {
    const r = await wsSession(`/v1.50/containers/${id}/attach/ws?stream=1&stdin=1&stdout=1`, ["x\n"]);
    expect(r).toEqual({ ops: [2], data: "got x\n", closed: true });
  } finally {
    await d.docker(["rm", "-f", id]);
  }
});

/** Sends raw request bytes on the Docker socket; returns the status line and body. */
async function rawRequest(text: string): Promise<{ status: string; body: string }> {
  const sock = connect(d.socket);
  let got = "";
  sock.on("data", (b) => (got += b.toString("latin1")));
  sock.on("error", () => {});
  sock.setTimeout(30_000, () => sock.destroy());
  sock.write(text);
  await new Promise((r) => sock.once("close", r));
  const [head, ...rest] = got.split("\r\n\r\n");
  return { status: head!.split("\r\n")[0]!, body: rest.join("\r\n\r\n") };
}

test("attach/ws: bad handshakes get Docker's JSON errors, not an upgrade", async () => {
  const id = await must(["create", IMG, "true"]);
  try {
    const plain = await d.api(`/v1.50/containers/${id}/attach/ws?stream=1`);
    expect(plain.status).toBe(400);
    expect(((await plain.json()) as { message: string }).message).toContain("not using the websocket protocol");
    const missing = await d.api("/v1.50/containers/no-such-thing/attach/ws");
    expect(missing.status).toBe(404);
    const noKey = await rawRequest(`GET /v1.50/containers/${id}/attach/ws?stream=1 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    expect(noKey.status).toStartWith("HTTP/1.1 400");
    expect(JSON.parse(noKey.body).message).toBe("websocket: invalid Sec-WebSocket-Key");
    const gone = await rawRequest(
      `GET /v1.50/containers/nope/attach/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    );
    expect(gone.status).toStartWith("HTTP/1.1 404");
  } finally {
    await d.docker(["rm", "-f", id]);
  }
});
