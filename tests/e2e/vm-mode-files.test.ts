/**
 * VM mode (issue 13): container files in the engine machine, through the real docker
 * CLI. docker cp (both ways, HEAD/GET/PUT /archive), export, diff, commit and build's
 * RUN read and write a container's root where it is, inside the machine (the guest
 * agent runs arcbox-rootfs-cp there; the bytes cross the agent link), with host mode's
 * answers and its rules: links and `..` resolve inside the container's root, never the
 * machine's or the host's. One daemon and one engine boot for the file (TCG: slow).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { connect } from "node:net";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";
import { buildBusyboxRootfs } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

const IMAGE = "vm-files-busybox:1";
const LONG = { timeoutMs: 300_000 };
let d: TestDaemon;
let work: string;
/** A name no other file on the host, the machine or the image has. */
const MARK = `escape-${process.pid}-${Date.now()}`;

const docker = (args: string[], opts: Parameters<TestDaemon["docker"]>[1] = LONG) => d.docker(args, opts);

/** Runs a command in the engine machine itself (its own files, not a container's). */
async function inEngine(script: string): Promise<string> {
  const r = await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "sh", "-c", script], LONG);
  if (r.code !== 0) throw new Error(`machine exec failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

const statOf = (res: Response) => JSON.parse(Buffer.from(res.headers.get("X-Docker-Container-Path-Stat") ?? "", "base64").toString()) as Record<string, unknown>;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "arcbox-vm-files-"));
  d = new TestDaemon("arcbox-vm-files-", {}, undefined, { engine: "vm" });
  await d.start();
  const root = join(work, "rootfs");
  mkdirSync(root);
  buildBusyboxRootfs(root);
  writeFileSync(join(root, "etc", "from-image"), "image file\n");
  const tar = Bun.spawnSync(["tar", "--numeric-owner", "-C", root, "-cf", "-", "."]).stdout;
  const imp = Bun.spawn(["docker", "-H", d.dockerHost, "import", "-", IMAGE], { stdin: tar, stdout: "pipe", stderr: "pipe" });
  if ((await imp.exited) !== 0) throw new Error(`docker import: ${await new Response(imp.stderr).text()}`);
  // The first run waits for the engine machine, which vmm boots at daemon start.
  const r = await d.docker(["run", "--rm", IMAGE, "true"], { timeoutMs: 540_000 });
  if (r.code !== 0) throw new Error(`first docker run failed (${r.code}): ${r.stderr}`);
  // A running container with a tree, links, and a link to its own root.
  const tree = "mkdir -p /d/sub && echo f > /d/sub/f && ln -s sub /d/l && ln -s /d /lnk && ln -s / /esc && mkdir /u && ln -s ../../../../../.. /u/up && exec sleep 100000";
  expect((await docker(["run", "-d", "--name", "live", IMAGE, "sh", "-c", tree])).code).toBe(0);
  await waitFor("the container's tree", async () => (await docker(["exec", "live", "ls", "/u/up"])).code === 0, 120_000);
}, 600_000);

afterAll(async () => {
  await d?.dispose();
  rmSync(work, { recursive: true, force: true });
}, 180_000);

describe("VM mode: docker cp", () => {
  test("out of a running container: files, directories, links, -L, missing paths", async () => {
    const out = join(work, "out");
    mkdirSync(out);
    expect((await docker(["cp", "live:/d", join(out, "a")])).code).toBe(0);
    expect(readFileSync(join(out, "a", "sub", "f"), "utf8")).toBe("f\n");
    expect(readlinkSync(join(out, "a", "l"))).toBe("sub");
    expect((await docker(["cp", "live:/lnk", join(out, "c")])).code).toBe(0);
    expect(readlinkSync(join(out, "c"))).toBe("/d");
    expect((await docker(["cp", "-L", "live:/lnk", join(out, "e")])).code).toBe(0);
    expect(readFileSync(join(out, "e", "sub", "f"), "utf8")).toBe("f\n");
    // A file from the image's layer, as the container sees it.
    expect((await docker(["cp", "live:/etc/from-image", join(out, "img")])).code).toBe(0);
    expect(readFileSync(join(out, "img"), "utf8")).toBe("image file\n");
    const missing = await docker(["cp", "live:/nope", join(out, "x")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Could not find the file /nope in container live");
    // HEAD: the stat only, as in host mode.
    const head = await d.api("/containers/live/archive?path=/lnk", { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(statOf(head)).toMatchObject({ name: "lnk", mode: 2 ** 27 + 0o777, linkTarget: "/d" });
    const rootStat = statOf(await d.api("/containers/live/archive?path=/", { method: "HEAD" }));
    expect(rootStat).toMatchObject({ name: "/", mode: 2 ** 31 + 0o755, linkTarget: "" });
  }, 300_000);

  test("into a running container: a directory with a file and a link; the API's errors", async () => {
    const src = join(work, "src");
    mkdirSync(join(src, "inner"), { recursive: true });
    writeFileSync(join(src, "inner", "file"), "from host\n");
    symlinkSync("inner/file", join(src, "link"));
    const r = await docker(["cp", src, "live:/in"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((await docker(["exec", "live", "cat", "/in/inner/file"])).stdout).toBe("from host\n");
    expect((await docker(["exec", "live", "readlink", "/in/link"])).stdout).toBe("inner/file\n");
    // The same errors as host mode (tests/e2e/cp-security.test.ts).
    writeFileSync(join(work, "plain"), "plain\n");
    const notDir = await d.api("/containers/live/archive?path=/d/sub/f", { method: "PUT", body: new Uint8Array(Bun.spawnSync(["tar", "-cf", "-", "-C", work, "plain"]).stdout) });
    expect(notDir.status).toBe(400);
    expect(((await notDir.json()) as { message: string }).message).toBe("extraction point is not a directory");
    const dotdot = Bun.spawnSync(["tar", "--numeric-owner", "-cf", "-", "-P", "--transform", "s,^,../,", "-C", work, "plain"]).stdout;
    const climb = await d.api("/containers/live/archive?path=/d", { method: "PUT", body: new Uint8Array(dotdot) });
    expect(climb.status).toBe(400);
    expect(((await climb.json()) as { message: string }).message).toBe('"../plain" is outside of "/d"');
  }, 300_000);

  test("links to / and `..` stay inside the container: not the machine's files, not the host's", async () => {
    const src = join(work, MARK);
    writeFileSync(src, "marked\n");
    // Through a link to the container's root, and through a climb of `..`s.
    expect((await docker(["cp", src, "live:/esc/tmp/"])).code).toBe(0);
    expect((await docker(["cp", src, "live:/u/up/var/tmp/"])).code).toBe(0);
    expect((await docker(["exec", "live", "cat", `/tmp/${MARK}`, `/var/tmp/${MARK}`])).stdout).toBe("marked\nmarked\n");
    expect((await inEngine(`ls /tmp/${MARK} /var/tmp/${MARK} 2>/dev/null; echo done`)).trim()).toBe("done");
    expect(existsSync(`/tmp/${MARK}`) || existsSync(`/var/tmp/${MARK}`)).toBe(false);
    // Reading through them finds the container's files, never the machine's (its agent's home).
    const agentHome = await d.api(`/containers/live/archive?path=/esc/var/lib/arcbox`, { method: "HEAD" });
    expect(agentHome.status).toBe(404);
    expect((await inEngine("test -d /var/lib/arcbox && echo yes")).trim()).toBe("yes");
    const up = join(work, "up-hostname");
    expect((await docker(["cp", "live:/u/up/etc/from-image", up])).code).toBe(0);
    expect(readFileSync(up, "utf8")).toBe("image file\n");
  }, 300_000);

  test("a large archive both ways; a reader that stalls holds the copy, not vmm's or apid's memory", async () => {
    const MIB = 32;
    expect((await docker(["exec", "live", "dd", "if=/dev/zero", "of=/big", "bs=1M", `count=${MIB}`])).code).toBe(0);
    try {
      await bigCopies(MIB);
    } finally {
      // The next tests commit this container: without the big files.
      await docker(["exec", "live", "rm", "-f", "/big", "/tmp/big-in"]);
    }
  }, 420_000);

  async function bigCopies(MIB: number): Promise<void> {
    let t = performance.now();
    const out = join(work, "big-out");
    expect((await docker(["cp", "live:/big", out])).code).toBe(0);
    const outMs = performance.now() - t;
    expect(lstatSync(out).size).toBe(MIB << 20);
    t = performance.now();
    expect((await docker(["cp", out, "live:/tmp/big-in"])).code).toBe(0);
    const inMs = performance.now() - t;
    expect((await docker(["exec", "live", "stat", "-c", "%s", "/tmp/big-in"])).stdout.trim()).toBe(String(MIB << 20));
    console.log(
      `vm-mode-files: docker cp of ${MIB} MiB out ${Math.round(outMs)} ms (${((MIB * 1000) / outMs).toFixed(1)} MiB/s), in ${Math.round(inMs)} ms (${((MIB * 1000) / inMs).toFixed(1)} MiB/s)`,
    );
    // A client that reads the headers, then stops reading: the helper in the machine waits.
    const apidRss = () => {
      const pid = Number(/^apid\s+\w+\s+(\d+)/m.exec(status)?.[1]);
      return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
    };
    const status = (await d.arcbox(["status"])).stdout;
    const before = apidRss();
    let received = 0;
    const sock = connect({ path: d.socket });
    sock.on("data", (b) => {
      received += b.length;
      sock.pause();
    });
    sock.write("GET /containers/live/archive?path=/big HTTP/1.1\r\nHost: docker\r\n\r\n");
    await waitFor("the first bytes", async () => received > 0, 60_000);
    // Long enough for the whole archive to have crossed, were nothing holding it back.
    await Bun.sleep(Math.max(8_000, outMs * 1.5));
    const during = apidRss();
    // vmm's own count of what it took from the machine for this stream (its RSS would
    // also count garbage not collected yet): flow control pauses the helper instead.
    const vmmState = (await (await fetch("http://x/state", { unix: join(d.home, "run", "vmm.debug.sock") } as RequestInit)).json()) as {
      engineFiles: { received: number; queued: number; paused: boolean }[];
    };
    const stream = vmmState.engineFiles.find((f) => f.received > 0);
    console.log(
      `vm-mode-files: stalled ${MIB} MiB GET: vmm took ${((stream?.received ?? 0) / 2 ** 20).toFixed(1)} MiB (${((stream?.queued ?? 0) / 2 ** 20).toFixed(1)} MiB queued for apid, paused ${stream?.paused}), apid RSS ${before.toFixed(0)} -> ${during.toFixed(0)} MiB; client got ${(received / 2 ** 20).toFixed(1)} MiB`,
    );
    expect(stream?.paused).toBe(true);
    expect(stream!.received).toBeLessThan((MIB << 20) / 2);
    expect(during - before).toBeLessThan(MIB / 2);
    sock.destroy();
  }

  test("a stopped container: its files outlive its exit; cp both ways through its links", async () => {
    const r = await docker(["run", "--name", "stopped", IMAGE, "sh", "-c", "mkdir -p /real && echo kept > /real/kept && ln -s / /esc && rm /etc/from-image"]);
    expect(r.code).toBe(0);
    const kept = join(work, "kept");
    expect((await docker(["cp", "stopped:/real/kept", kept])).code).toBe(0);
    expect(readFileSync(kept, "utf8")).toBe("kept\n");
    const src = join(work, `${MARK}-stopped`);
    writeFileSync(src, "into stopped\n");
    expect((await docker(["cp", src, "stopped:/esc/real/"])).code).toBe(0);
    expect(lstatSync(join(work, "kept")).isFile()).toBe(true);
    const back = join(work, "back");
    expect((await docker(["cp", `stopped:/real/${MARK}-stopped`, back])).code).toBe(0);
    expect(readFileSync(back, "utf8")).toBe("into stopped\n");
    expect((await inEngine(`ls /real 2>/dev/null; echo done`)).trim()).toBe("done");
    const gone = await docker(["cp", "stopped:/etc/from-image", join(work, "gone")]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("Could not find the file /etc/from-image in container stopped");
  }, 300_000);
});

describe("VM mode: export, diff, commit, build", () => {
  test("docker export of the stopped container: its root filesystem, its changes included", async () => {
    const tar = join(work, "stopped.tar");
    const r = await docker(["export", "-o", tar, "stopped"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const list = Bun.spawnSync(["tar", "tf", tar]).stdout.toString().split("\n");
    expect(list).toContain("./bin/busybox");
    expect(list).toContain("./real/kept");
    expect(list).toContain(`./real/${MARK}-stopped`);
    expect(list).toContain("./esc");
    expect(list).not.toContain("./etc/from-image");
    expect(list).toContain("./etc/passwd");
  }, 300_000);

  test("docker diff: added, changed and deleted paths (running and stopped)", async () => {
    const stopped = await docker(["diff", "stopped"]);
    expect(stopped.code).toBe(0);
    const lines = stopped.stdout.trim().split("\n");
    expect(lines).toContain("A /real");
    expect(lines).toContain("A /real/kept");
    expect(lines).toContain("A /esc");
    expect(lines).toContain("C /etc");
    expect(lines).toContain("D /etc/from-image");
    const live = (await docker(["diff", "live"])).stdout.trim().split("\n");
    expect(live).toContain("A /d/sub/f");
    expect(live).toContain("A /in/link");
  }, 300_000);

  test("docker commit, then run the new image: added files there, deleted ones gone", async () => {
    const c = await docker(["commit", "-c", "CMD cat /real/kept", "stopped", "vm-committed:1"]);
    expect(c.stderr).toBe("");
    expect(c.code).toBe(0);
    const run = await docker(["run", "--rm", "vm-committed:1"]);
    expect(run).toMatchObject({ code: 0, stdout: "kept\n" });
    const check = await docker(["run", "--rm", "vm-committed:1", "sh", "-c", "readlink /esc; test -e /etc/from-image && echo still-there; cat /etc/passwd | head -1"]);
    expect(check.stdout).toBe("/\nroot:x:0:0:root:/root:/bin/sh\n");
    // A running container commits too (paused meanwhile, as dockerd does).
    expect((await docker(["commit", "live", "vm-committed:live"])).code).toBe(0);
    expect((await docker(["run", "--rm", "vm-committed:live", "cat", "/in/inner/file"])).stdout).toBe("from host\n");
  }, 300_000);

  test("docker build with RUN steps", async () => {
    const ctx = join(work, "ctx");
    mkdirSync(ctx);
    writeFileSync(join(ctx, "Dockerfile"), `FROM ${IMAGE}\nRUN echo built > /built.txt && rm /etc/from-image\nRUN cat /built.txt > /again.txt\nCMD cat /built.txt /again.txt\n`);
    const b = await docker(["build", "-t", "vm-built:1", ctx], { env: { DOCKER_BUILDKIT: "0" }, timeoutMs: 400_000 });
    expect(b.code).toBe(0);
    expect(b.stdout).toContain("Successfully tagged vm-built:1");
    const run = await docker(["run", "--rm", "vm-built:1"]);
    expect(run).toMatchObject({ code: 0, stdout: "built\nbuilt\n" });
    expect((await docker(["run", "--rm", "vm-built:1", "sh", "-c", "test -e /etc/from-image || echo deleted"])).stdout).toBe("deleted\n");
  }, 450_000);

  test("docker rm removes the container's files from the machine's disk", async () => {
    const id = (await docker(["inspect", "-f", "{{.Id}}", "stopped"])).stdout.trim();
    expect((await inEngine(`test -d /var/lib/arcbox/data/vmm/host/rootfs/${id}/upper && echo yes`)).trim()).toBe("yes");
    expect((await docker(["rm", "stopped"])).code).toBe(0);
    expect((await inEngine(`test -e /var/lib/arcbox/data/vmm/host/rootfs/${id} && echo yes; echo done`)).trim()).toBe("done");
  }, 300_000);
});
