/**
 * The Docker socket's limits (issue 8, item 10): JSON bodies are bounded in size and
 * depth without apid reading or parsing what it refuses, stream uploads stay
 * unbounded, big headers (X-Registry-Auth) are accepted as dockerd accepts them, and a
 * quiet stream (`GET /events`) answers its headers at once.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createConnection } from "node:net";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon } from "../helpers/daemon.ts";
import { rawTar } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

const d = new TestDaemon("arcbox-socket-limits-");
beforeAll(() => d.start(), 60_000);
afterAll(() => d.dispose(), 60_000);

const MiB = 1 << 20;

function pssKb(pid: number): number {
  return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1]);
}

/** A body sent chunked (no Content-Length), 64 KiB at a time. */
function chunked(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (let i = 0; i < bytes.length; i += 65536) c.enqueue(bytes.subarray(i, i + 65536));
      c.close();
    },
  });
}

const post = (path: string, body: RequestInit["body"]) => d.api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body });

describe("JSON request bodies", () => {
  test("a body over 4 MiB is a 413, with or without a Content-Length", async () => {
    const big = new TextEncoder().encode(JSON.stringify({ Image: "x", Env: [`A=${"a".repeat(5 * MiB)}`] }));
    for (const body of [big, chunked(big)]) {
      const r = await post("/containers/create", body);
      expect(r.status).toBe(413);
      expect(r.headers.get("content-type")).toBe("application/json");
      expect(((await r.json()) as { message: string }).message).toBe("request body too large: JSON bodies are limited to 4 MiB");
    }
    // The refused connection is closed; the daemon keeps serving.
    expect((await d.api("/_ping")).status).toBe(200);
  });

  test("nesting deeper than 10000 levels is a 400; 10000 levels still parse", async () => {
    const r = await post("/networks/create", chunked(new TextEncoder().encode("[".repeat(20_000))));
    expect(r.status).toBe(400);
    expect(((await r.json()) as { message: string }).message).toBe("invalid JSON: exceeded max depth (10000 levels)");
    // At the limit the body reaches the route, which validates it as usual.
    const deep = `{"Name":"deep","Labels":{"a":${"[".repeat(9_998)}${"]".repeat(9_998)}}}`;
    const ok = await post("/networks/create", deep);
    expect(ok.status).toBe(400);
    expect(((await ok.json()) as { message: string }).message).toContain("Labels");
  });

  test("four concurrent 5 MB bodies of '[' leave apid's memory where it was", async () => {
    const { pid } = await new ServiceClients(arcboxHome(d.home)).health("apid").check({});
    const before = pssKb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, pssKb(pid))), 10);
    const bytes = new TextEncoder().encode("[".repeat(5 * MiB));
    const statuses = await Promise.all([bytes, bytes, chunked(bytes), chunked(bytes)].map(async (b) => (await post("/containers/create", b)).status));
    clearInterval(sampler);
    expect(statuses).toEqual([413, 413, 400, 400]);
    // Before the limits: a peak of ~800 MB, and ~330 MB kept afterwards.
    expect(peak - before).toBeLessThan(40 * 1024);
  });

  test("stream uploads are not bounded: a 6 MiB import goes through", async () => {
    const noise = new Uint8Array(6 * MiB);
    for (let i = 0; i < noise.length; i += 65536) crypto.getRandomValues(noise.subarray(i, i + 65536));
    const tar = rawTar([{ name: "noise.bin", data: noise }]);
    const r = await d.api("/images/create?fromSrc=-&repo=limits-import&tag=v1", { method: "POST", headers: { "Content-Type": "application/x-tar" }, body: chunked(tar) });
    expect(r.status).toBe(200);
    const out = await r.text();
    expect(out).not.toContain("error");
    const inspect = await d.api("/images/limits-import:v1/json");
    expect(inspect.status).toBe(200);
    expect(((await inspect.json()) as { Size: number }).Size).toBeGreaterThanOrEqual(6 * MiB);
  });
});

test("a 64 KiB header (a big X-Registry-Auth) is accepted", async () => {
  const auth = Buffer.from(JSON.stringify({ username: "u", password: "p".repeat(48 << 10) })).toString("base64url");
  expect(auth.length).toBeGreaterThan(64 << 10);
  const r = await d.api("/_ping", { headers: { "X-Registry-Auth": auth } });
  expect(r.status).toBe(200);
  expect(await r.text()).toBe("OK");
});

test("GET /events answers 200 and its headers at once, before any event", async () => {
  const head = await new Promise<string>((resolve, reject) => {
    const c = createConnection(d.socket);
    let out = "";
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no headers within 1 s; got ${JSON.stringify(out)}`));
    }, 1000);
    c.on("data", (b) => {
      out += b.toString();
      if (out.includes("\r\n\r\n")) {
        clearTimeout(timer);
        c.destroy();
        resolve(out);
      }
    });
    c.on("error", reject);
    c.write("GET /v1.50/events HTTP/1.1\r\nHost: docker\r\n\r\n");
  });
  expect(head).toStartWith("HTTP/1.1 200");
  expect(head.toLowerCase()).toContain("content-type: application/json");
});

describe("response streams", () => {
  test("a slow `docker logs -f` client: apid holds a bounded part of a 100 MB log, and the client still gets all of it", async () => {
    await d.importBusybox("limits-busybox:1");
    const LINES = 1_000_000;
    const line = `${"0123456789".repeat(9)}abcdefghi`; // 99 bytes + newline
    const started = await d.docker(["run", "-d", "--name", "chatty", "limits-busybox:1", "sh", "-c", `yes ${line} | head -n ${LINES}; echo DONE; exec sleep 600`]);
    expect(started.code).toBe(0);
    await waitFor("the container's last line", async () => (await d.docker(["logs", "--tail", "1", "chatty"])).stdout.trim() === "DONE", 120_000);
    const { pid } = await new ServiceClients(arcboxHome(d.home)).health("apid").check({});
    const before = pssKb(pid);
    const res = await d.api("/containers/chatty/logs?stdout=1&stderr=1&follow=1");
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let got = (await reader.read()).value!.length;
    // The client stops reading for a while: apid must wait for it, not read ahead.
    let peak = before;
    for (let i = 0; i < 30; i++) {
      await Bun.sleep(100);
      peak = Math.max(peak, pssKb(pid));
    }
    // Before: apid read the whole log into the stream at once (~1 GB RSS for 300 MB).
    expect(peak - before).toBeLessThan(40 * 1024);
    // The container stops: a follower gets everything, then its stream ends.
    expect((await d.docker(["kill", "chatty"])).code).toBe(0);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      got += value.length;
    }
    // Each line is one frame: an 8-byte header and the line; then "DONE\n".
    expect(got).toBe(LINES * (8 + line.length + 1) + 8 + 5);
    await d.docker(["rm", "-f", "chatty"]);
  }, 300_000);
});

describe("event subscribers", () => {
  test("a `docker events` subscriber that never reads: apid keeps a bounded queue for it, and a reader still gets every event", async () => {
    await d.importBusybox("limits-busybox:events");
    // Container events carry the container's labels: 60 KB each here.
    const big = "x".repeat(60_000);
    expect((await d.docker(["run", "-d", "--name", "labelled", "--label", `big=${big}`, "limits-busybox:events", "sleep", "600"])).code).toBe(0);
    const { pid } = await new ServiceClients(arcboxHome(d.home)).health("apid").check({});
    const apidDebug = (path: string) => fetch(`http://x${path}`, { unix: join(d.home, "run", "apid.debug.sock") } as RequestInit);
    // apid's own subscribers (restart policies, health) are counted too.
    const listeners = async () => ((await (await apidDebug("/state")).json()) as { eventListeners: number }).eventListeners;
    const listening = await listeners();
    // A subscriber that sends its request and then never reads a byte.
    const stalled = Bun.spawn(
      [
        "python3",
        "-c",
        "import socket,sys,time; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'GET /v1.50/events HTTP/1.1\\r\\nHost: docker\\r\\n\\r\\n'); print('sent', flush=True); time.sleep(600)",
        d.socket,
      ],
      { stdout: "pipe" },
    );
    await new Response(stalled.stdout).body!.getReader().read();
    // And one that reads everything, filtered to the execs.
    const live = await d.api(`/events?filters=${encodeURIComponent(JSON.stringify({ event: ["exec_create"] }))}`);
    const reader = live.body!.getReader();
    await waitFor("both subscribers", async () => (await listeners()) === listening + 2, 10_000);
    // The reader keeps up all along, counting what it is sent.
    const EXECS = 600; // 36 MB of events for the stalled subscriber
    const received = (async () => {
      const dec = new TextDecoder();
      let got = 0;
      let text = "";
      while (got < EXECS) {
        const { done, value } = await reader.read();
        if (done) break;
        text += dec.decode(value, { stream: true });
        const lines = text.split("\n");
        text = lines.pop()!;
        got += lines.filter((l) => l.includes("exec_create")).length;
      }
      return got;
    })();
    const before = pssKb(pid);
    for (let i = 0; i < EXECS; i++) expect((await post("/containers/labelled/exec", JSON.stringify({ Cmd: ["true"] }))).status).toBe(201);
    expect(await received).toBe(EXECS);
    // What apid still holds once its settle collection has run (5 s after the last
    // request). Before: every event stayed queued for the stalled subscriber (+36 MB).
    await Bun.sleep(6_000);
    expect(pssKb(pid) - before).toBeLessThan(16 * 1024);
    await reader.cancel();
    const metrics = await (await apidDebug("/metrics")).text();
    expect(Number(/^arcbox_apid_events_dropped_total (\d+)$/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
    stalled.kill();
    await d.docker(["rm", "-f", "labelled"]);
  }, 300_000);
});

describe("commit", () => {
  test("docker commit of a 100 MB change keeps imaged's memory bounded and the layer whole", async () => {
    await d.importBusybox("limits-commit:1");
    const made = await d.docker(["run", "--name", "bigdiff", "limits-commit:1", "sh", "-c", "head -c 100000000 /dev/urandom > /big && md5sum /big > /big.md5"]);
    expect(made.code).toBe(0);
    const { pid } = await new ServiceClients(arcboxHome(d.home)).health("imaged").check({});
    const before = pssKb(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, pssKb(pid))), 50);
    const committed = await d.docker(["commit", "bigdiff", "limits-committed:1"], { timeoutMs: 180_000 });
    clearInterval(sampler);
    expect(committed.code).toBe(0);
    // Before: the whole diff was read into the gzip stream's queue (+150 MB here; now
    // about +60 MB whatever the size: gzip's and the tar reader's buffers).
    expect(peak - before).toBeLessThan(100 * 1024);
    const check = await d.docker(["run", "--rm", "limits-committed:1", "md5sum", "-c", "/big.md5"]);
    expect(check.stdout).toContain("/big: OK");
    await d.docker(["rm", "-f", "bigdiff"]);
  }, 300_000);
});
