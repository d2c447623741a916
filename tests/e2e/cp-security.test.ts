/**
 * docker cp's archive API under attack and under faults: a container racing symlink
 * swaps against GET and PUT /archive must never reach the host, HEAD only stats,
 * a dropped upload leaves nothing running or mounted, and paths resolve the way the
 * container sees them (`/` of a running container, symlinks of a stopped one).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import type { TestDaemon } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;
const work = mkdtempSync(join(tmpdir(), "arcbox-cp-security-"));

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-cp-security-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

const docker = (args: string[], opts?: Parameters<TestDaemon["docker"]>[1]) => d.docker(args, opts);

/** A tar holding `entries` (paths relative to a scratch dir, "name/" for a directory, "name->target" for a link). */
function makeTar(entries: string[], contents = "from host\n"): Uint8Array {
  const dir = mkdtempSync(join(work, "tar-"));
  const names: string[] = [];
  for (const e of entries) {
    if (e.includes("->")) {
      const [name, target] = e.split("->") as [string, string];
      Bun.spawnSync(["ln", "-s", target, join(dir, name)]);
      names.push(name);
    } else if (e.endsWith("/")) {
      mkdirSync(join(dir, e), { recursive: true });
      names.push(e.slice(0, -1));
    } else {
      mkdirSync(dirname(join(dir, e)), { recursive: true });
      writeFileSync(join(dir, e), contents);
      names.push(e);
    }
  }
  const out = Bun.spawnSync(["tar", "--numeric-owner", "--no-recursion", "-C", dir, "-cf", "-", ...names]).stdout;
  rmSync(dir, { recursive: true, force: true });
  return new Uint8Array(out);
}

/** Process ids of this home's daemon and everything it started (services, agent, shims, tar, helpers). */
function homeProcesses(): Set<number> {
  const parent = new Map<number, number>();
  const roots: number[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!pid) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(d.home)) roots.push(pid);
    } catch {}
  }
  const out = new Set(roots);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent) if (!out.has(pid) && out.has(ppid)) out.add(pid), (grew = true);
  }
  return out;
}

const homeMounts = () =>
  readFileSync("/proc/mounts", "utf8")
    .split("\n")
    .filter((l) => l.includes(d.home))
    .sort();
const describeProcs = (pids: number[]) =>
  pids.map(
    (p) =>
      `${p}: ${(() => {
        try {
          return readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ");
        } catch {
          return "(gone)";
        }
      })()}`,
  );

/** Waits until no process or mount is left beyond the baseline (a leak fails with what leaked). */
async function expectNoLeak(base: { procs: Set<number>; mounts: string[] }) {
  let extra: number[] = [];
  try {
    await waitFor(
      "leftover processes and mounts to go",
      async () => {
        extra = [...homeProcesses()].filter((p) => !base.procs.has(p));
        return extra.length === 0 && homeMounts().join("\n") === base.mounts.join("\n");
      },
      5_000,
    );
  } catch {
    expect(describeProcs(extra)).toEqual([]);
    expect(homeMounts()).toEqual(base.mounts);
  }
}
const baseline = () => ({ procs: homeProcesses(), mounts: homeMounts() });

describe("docker cp against a symlink-swapping container", () => {
  test("GET and PUT /archive never reach the host (0 escapes)", async () => {
    // The host side: a secret to read and a directory to write into, at the same path
    // the container mirrors under /w/dir.
    const hostDir = mkdtempSync(join(work, "host-"));
    const secret = `HOST-SECRET-${crypto.randomUUID()}`;
    writeFileSync(join(hostDir, "secret"), secret);
    const racer = `mkdir -p /w/dir${hostDir} && echo inside > /w/dir${hostDir}/secret && ln -s / /w/lnk && while :; do mv /w/dir /w/d; mv /w/d /w/dir; mv /w/lnk /w/d; mv /w/d /w/lnk; done`;
    const run = await docker(["run", "-d", "--name", "racer", "--network", "none", IMG, "sh", "-c", racer]);
    expect(run.code).toBe(0);
    await waitFor("the racer to loop", async () => (await docker(["exec", "racer", "ls", "/w/lnk"])).code === 0);

    const upload = makeTar(["escaped"]);
    let gets = 0,
      puts = 0,
      readOk = 0,
      wroteOk = 0,
      leaks = 0;
    const deadline = Date.now() + 6_000;
    const getLoop = async () => {
      while (Date.now() < deadline) {
        const res = await d.api(`/containers/racer/archive?path=${encodeURIComponent(`/w/d${hostDir}/secret`)}`);
        const body = new Uint8Array(await res.arrayBuffer());
        gets++;
        if (res.status === 200) readOk++;
        if (Buffer.from(body).includes(secret)) leaks++;
      }
    };
    const putLoop = async () => {
      while (Date.now() < deadline) {
        const res = await d.api(`/containers/racer/archive?path=${encodeURIComponent(`/w/d${hostDir}`)}`, { method: "PUT", body: upload });
        await res.arrayBuffer();
        puts++;
        if (res.status === 200) wroteOk++;
      }
    };
    await Promise.all([getLoop(), getLoop(), putLoop(), putLoop()]);
    // Through the CLI too, which sends HEAD before each copy.
    const upFile = join(work, "cli-escaped");
    writeFileSync(upFile, "from the cli\n");
    for (let i = 0; i < 5; i++) {
      const out = join(work, `cli-secret-${i}`);
      await docker(["cp", `racer:/w/d${hostDir}/secret`, out]);
      if (existsSync(out) && readFileSync(out, "utf8").includes(secret)) leaks++;
      await docker(["cp", upFile, `racer:/w/d${hostDir}/`]);
    }
    // docker export walks the same racing tree.
    for (let i = 0; i < 3; i++) {
      const res = await d.api("/containers/racer/export");
      expect(res.status).toBe(200);
      if (Buffer.from(await res.arrayBuffer()).includes(secret)) leaks++;
    }
    console.log(`cp race: ${gets} GETs (${readOk} read the container's file), ${puts} PUTs (${wroteOk} wrote inside)`);
    expect(leaks).toBe(0);
    expect(readdirSync(hostDir).sort()).toEqual(["secret"]);
    // The copies that succeeded went into the container.
    expect(gets).toBeGreaterThan(20);
    expect(readOk + wroteOk).toBeGreaterThan(0);
    await docker(["rm", "-f", "racer"]);
  }, 60_000);
});

describe("the archive API leaves nothing behind", () => {
  test("HEAD only stats: no tar process, no mount (running and stopped)", async () => {
    await docker(["run", "-d", "--name", "head1", "--network", "none", IMG, "sleep", "1000"]);
    await docker(["create", "--name", "head2", "--network", "none", IMG, "true"]);
    const base = baseline();
    for (const c of ["head1", "head2"]) {
      for (let i = 0; i < 5; i++) {
        const res = await d.api(`/containers/${c}/archive?path=/etc`, { method: "HEAD" });
        expect(res.status).toBe(200);
        const stat = JSON.parse(Buffer.from(res.headers.get("X-Docker-Container-Path-Stat")!, "base64").toString());
        expect(stat.name).toBe("etc");
        expect(stat.mode).toBe(2 ** 31 + 0o755);
      }
      const missing = await d.api(`/containers/${c}/archive?path=/nope`, { method: "HEAD" });
      expect(missing.status).toBe(404);
    }
    await expectNoLeak(base);
    await docker(["rm", "-f", "head1", "head2"]);
  });

  test("a PUT dropped mid-body leaves no tar process and no mount (running and stopped)", async () => {
    await docker(["run", "-d", "--name", "drop1", "--network", "none", IMG, "sleep", "1000"]);
    await docker(["create", "--name", "drop2", "--network", "none", IMG, "true"]);
    const base = baseline();
    const tar = makeTar(["big"], "x".repeat(1 << 20));
    for (const c of ["drop1", "drop2"]) {
      for (let i = 0; i < 3; i++) {
        const sent = Promise.withResolvers<void>();
        const sock = await Bun.connect({
          unix: d.socket,
          socket: { data() {}, open() {}, drain() {}, close: () => sent.resolve() },
        });
        sock.write(`PUT /containers/${c}/archive?path=/tmp HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: ${tar.length}\r\n\r\n`);
        sock.write(tar.subarray(0, 64 * 1024));
        await Bun.sleep(300);
        sock.end();
        await sent.promise;
      }
    }
    await expectNoLeak(base);
    // The containers are still usable, and nothing partial is left in the stopped one's way.
    expect((await docker(["exec", "drop1", "true"])).code).toBe(0);
    expect((await docker(["start", "drop2"])).code).toBe(0);
    await docker(["rm", "-f", "drop1", "drop2"]);
  });
});

describe("paths resolve as the container sees them", () => {
  test("docker cp into / of a running container", async () => {
    await docker(["run", "-d", "--name", "root1", "--network", "none", IMG, "sleep", "1000"]);
    const src = join(work, "at-root.txt");
    writeFileSync(src, "at root\n");
    const r = await docker(["cp", src, "root1:/"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((await docker(["exec", "root1", "cat", "/at-root.txt"])).stdout).toBe("at root\n");
    // `/` stats as a directory, not as a link.
    const res = await d.api("/containers/root1/archive?path=/", { method: "HEAD" });
    const stat = JSON.parse(Buffer.from(res.headers.get("X-Docker-Container-Path-Stat")!, "base64").toString());
    expect(stat).toMatchObject({ name: "/", mode: 2 ** 31 + 0o755, linkTarget: "" });
    await docker(["rm", "-f", "root1"]);
  });

  test("an entry under an in-container symlink follows it on a stopped container", async () => {
    await docker(["run", "--name", "link1", "--network", "none", IMG, "sh", "-c", "mkdir -p /real/tmp && ln -s /real /x"]);
    const res = await d.api("/containers/link1/archive?path=/", { method: "PUT", body: makeTar(["x/tmp/f"]) });
    expect(res.status).toBe(200);
    // /x is still a link, and the file landed in its target.
    const head = await d.api("/containers/link1/archive?path=/x", { method: "HEAD" });
    const stat = JSON.parse(Buffer.from(head.headers.get("X-Docker-Container-Path-Stat")!, "base64").toString());
    expect(stat.linkTarget).toBe("/real");
    expect(stat.mode).toBe(2 ** 27 + 0o777);
    const got = await d.api("/containers/link1/archive?path=/real/tmp/f");
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer()).includes("from host\n")).toBe(true);
    await docker(["rm", "-f", "link1"]);
  });

  test("a stopped container's volumes and binds are seen and written by docker cp", async () => {
    const bind = mkdtempSync(join(work, "bind-"));
    writeFileSync(join(bind, "on-bind"), "bind file\n");
    const ro = mkdtempSync(join(work, "ro-"));
    expect((await docker(["run", "--name", "vol1", "--network", "none", "-v", "cpvol:/data", "-v", `${bind}:/b`, "-v", `${ro}:/ro:ro`, IMG, "sh", "-c", "echo in volume > /data/f"])).code).toBe(0);
    const out = join(work, "vol-f");
    expect((await docker(["cp", "vol1:/data/f", out])).code).toBe(0);
    expect(readFileSync(out, "utf8")).toBe("in volume\n");
    expect((await docker(["cp", "vol1:/b/on-bind", join(work, "bind-out")])).code).toBe(0);
    expect(readFileSync(join(work, "bind-out"), "utf8")).toBe("bind file\n");
    const src = join(work, "to-volume");
    writeFileSync(src, "copied in\n");
    expect((await docker(["cp", src, "vol1:/data/"])).code).toBe(0);
    expect((await docker(["run", "--rm", "--network", "none", "-v", "cpvol:/data", IMG, "cat", "/data/to-volume"])).stdout).toBe("copied in\n");
    // A read-only bind stays read-only, and the host directory untouched.
    const roCopy = await docker(["cp", src, "vol1:/ro/"]);
    expect(roCopy.code).not.toBe(0);
    expect(readdirSync(ro)).toEqual([]);
    await docker(["rm", "-f", "-v", "vol1"]);
    await docker(["volume", "rm", "cpvol"]);
  });

  test("layouts and errors are Docker's: dir vs dir/., links with and without -L, bad paths and archives", async () => {
    await docker(["run", "-d", "--name", "lay1", "--network", "none", IMG, "sh", "-c", "mkdir -p /d/sub && echo f > /d/sub/f && ln -s sub /d/l && ln -s /d /lnk && exec sleep 1000"]);
    await waitFor("the tree", async () => (await docker(["exec", "lay1", "ls", "/lnk"])).code === 0);
    const out = mkdtempSync(join(work, "layout-"));
    writeFileSync(join(work, "plain"), "plain\n");
    expect((await docker(["cp", "lay1:/d", join(out, "a")])).code).toBe(0);
    expect(readFileSync(join(out, "a", "sub", "f"), "utf8")).toBe("f\n");
    expect(readlinkSync(join(out, "a", "l"))).toBe("sub");
    mkdirSync(join(out, "b"));
    expect((await docker(["cp", "lay1:/d/.", join(out, "b")])).code).toBe(0);
    expect(readFileSync(join(out, "b", "sub", "f"), "utf8")).toBe("f\n");
    expect((await docker(["cp", "lay1:/lnk", join(out, "c")])).code).toBe(0);
    expect(readlinkSync(join(out, "c"))).toBe("/d");
    expect((await docker(["cp", "-L", "lay1:/lnk", join(out, "e")])).code).toBe(0);
    expect(readFileSync(join(out, "e", "sub", "f"), "utf8")).toBe("f\n");
    expect((await docker(["cp", "lay1:/", join(out, "root")])).code).toBe(0);
    expect(readFileSync(join(out, "root", "d", "sub", "f"), "utf8")).toBe("f\n");
    const missing = await docker(["cp", "lay1:/nope", join(out, "x")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("Could not find the file /nope in container lay1");
    // The raw API: no path, extraction into a file, a member climbing out, a dir over a file.
    const noPath = await d.api("/containers/lay1/archive");
    expect(noPath.status).toBe(400);
    expect(((await noPath.json()) as { message: string }).message).toBe("bad parameter: 'path' cannot be empty");
    const notDir = await d.api("/containers/lay1/archive?path=/d/sub/f", { method: "PUT", body: makeTar(["y"]) });
    expect(notDir.status).toBe(400);
    expect(((await notDir.json()) as { message: string }).message).toBe("extraction point is not a directory");
    const dotdot = Bun.spawnSync(["tar", "--numeric-owner", "-cf", "-", "-P", "--transform", "s,^,../,", "-C", work, "plain"]).stdout;
    const climb = await d.api("/containers/lay1/archive?path=/d", { method: "PUT", body: new Uint8Array(dotdot) });
    expect(climb.status).toBe(400);
    expect(((await climb.json()) as { message: string }).message).toBe('"../plain" is outside of "/d"');
    const dirOverFile = await d.api("/containers/lay1/archive?path=/d/sub&noOverwriteDirNonDir=true", { method: "PUT", body: makeTar(["f/"]) });
    expect(dirOverFile.status).toBe(400);
    expect(((await dirOverFile.json()) as { message: string }).message).toBe('cannot overwrite non-directory "/d/sub/f" with directory "/d/sub"');
    expect((await docker(["exec", "lay1", "cat", "/d/sub/f"])).stdout).toBe("f\n");
    // copyUIDGID keeps the archive's owners; without it they are root's.
    const owned = Bun.spawnSync(["tar", "--owner=1234", "--group=5678", "--numeric-owner", "-cf", "-", "-C", work, "plain"]).stdout;
    expect((await d.api("/containers/lay1/archive?path=/tmp&copyUIDGID=True", { method: "PUT", body: new Uint8Array(owned) })).status).toBe(200);
    expect((await d.api("/containers/lay1/archive?path=/d", { method: "PUT", body: new Uint8Array(owned) })).status).toBe(200);
    expect((await docker(["exec", "lay1", "stat", "-c", "%u:%g", "/tmp/plain", "/d/plain"])).stdout).toBe("1234:5678\n0:0\n");
    await docker(["rm", "-f", "lay1"]);
  });

  test("docker export of a running container holds its root filesystem alone", async () => {
    await docker(["run", "-d", "--name", "exp1", "--network", "none", "-v", "expvol:/data", IMG, "sh", "-c", "echo v > /data/in-volume && echo r > /in-root && exec sleep 1000"]);
    await waitFor("the files", async () => (await docker(["exec", "exp1", "cat", "/data/in-volume"])).code === 0);
    const tar = join(work, "exp1.tar");
    expect((await docker(["export", "-o", tar, "exp1"])).code).toBe(0);
    const list = Bun.spawnSync(["tar", "tf", tar]).stdout.toString().split("\n");
    expect(list).toContain("./bin/busybox");
    expect(list).toContain("./in-root");
    expect(list).toContain("./proc/");
    expect(list.filter((n) => n.startsWith("./proc/") && n !== "./proc/")).toEqual([]);
    expect(list).not.toContain("./data/in-volume");
    await docker(["rm", "-f", "-v", "exp1"]);
    await docker(["volume", "rm", "expvol"]);
  });

  test("file capabilities survive docker cp both ways, as Docker's security.capability xattr", async () => {
    await docker(["run", "-d", "--name", "caps1", "--network", "none", IMG, "sleep", "1000"]);
    const src = join(work, "capfile");
    writeFileSync(src, "#!/bin/sh\n", { mode: 0o755 });
    expect(Bun.spawnSync(["setcap", "cap_net_raw+ep", src]).exitCode).toBe(0);
    expect((await docker(["cp", src, "caps1:/tmp/"])).code).toBe(0);
    const back = join(work, "capfile.back");
    expect((await docker(["cp", "caps1:/tmp/capfile", back])).code).toBe(0);
    expect(Bun.spawnSync(["getcap", back]).stdout.toString()).toContain("cap_net_raw=ep");
    await docker(["rm", "-f", "caps1"]);
  });
});
