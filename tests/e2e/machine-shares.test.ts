/**
 * Machine shares end to end: the real CLI, vmm, fsd's arcbox-virtiofsd servers and a
 * real qemu machine (TCG here) booted from a busybox image imported with the docker CLI.
 * One machine with three shares (read-write, read-only, the home directory by default)
 * is reused for the file operations, host edits, escapes, EROFS, free page reporting,
 * kill -9 of fsd and of vmm, and mount add/rm across a restart; a second one checks
 * --no-home. xattr and mmap run through the guest's Bun (bun:ffi), since busybox has
 * neither setfattr nor an mmap tool.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ARCBOX, TestDaemon, type RunResult } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { arcboxHome, debugSocket } from "../../lib/home.ts";

const IMAGE = "mshare-busybox:1";
const BOOT_MS = 240_000;
const root = mkdtempSync(join(tmpdir(), "arcbox-mshare-"));
const dirs = { home: join(root, "home"), share: join(root, "share"), ro: join(root, "ro"), outside: join(root, "outside"), later: join(root, "later") };
const SECRET = `secret-${randomBytes(8).toString("hex")}`;
const G = "/mnt/share"; // the read-write share in the guest
let d: TestDaemon;
let clients: ServiceClients;

const env = { HOME: dirs.home };
const machine = (args: string[], opts?: Parameters<TestDaemon["arcbox"]>[1]) => d.arcbox(["machine", ...args], { timeoutMs: BOOT_MS, ...opts, env: { ...env, ...opts?.env } });
async function ok(args: string[], opts?: Parameters<TestDaemon["arcbox"]>[1]): Promise<string> {
  const r = await machine(args, opts);
  if (r.code !== 0) throw new Error(`arcbox machine ${args.join(" ")} (exit ${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}
/** A shell script in the machine; its output and exit code. */
const guest = (name: string, script: string) => machine(["exec", name, "--", "sh", "-c", script]);
const inspect = async (name: string) =>
  JSON.parse(await ok(["inspect", name])) as { State: string; StopReason: string; Pid: number; Mounts: { Tag: string; Source: string; Destination: string; RW: boolean; Cache: string }[] };
function expectFail(r: RunResult, message: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(message);
}
const procArgs = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
};
/** arcbox-virtiofsd processes serving this daemon's machine `name`: pid -> tag. */
function servers(name: string): Map<number, string> {
  const out = new Map<number, string>();
  const prefix = join(d.home, "run", "vfs", `${name}.`);
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const a = procArgs(Number(e));
    if (!a[0]?.endsWith("arcbox-virtiofsd")) continue;
    const sock = a[a.indexOf("--socket") + 1] ?? "";
    if (sock.startsWith(prefix)) out.set(Number(e), sock.slice(prefix.length).replace(/\.sock$/, ""));
  }
  return out;
}
const listShares = async (name: string) =>
  (await clients.shares.listShares({ machine: name })).shares.map((s) => ({ tag: s.tag, pid: s.pid, state: s.state, connected: s.connected, hostDir: s.hostDir }));
const fsdPid = async () => ((await (await fetch("http://fsd/health", { unix: debugSocket(arcboxHome(d.home), "fsd") } as RequestInit)).json()) as { pid: number }).pid;
const alive = (pid: number) => procArgs(pid).length > 1;
const checks = (out: string) => out.split("\n").filter((l) => l.startsWith("CHECK ") && !l.endsWith(" ok"));

/** xattr and mmap in the guest through Bun's FFI (libc); prints CHECK lines. */
const FS_OPS_JS = `
import { dlopen, FFIType as T, ptr, toArrayBuffer } from "bun:ffi";
import { closeSync, openSync } from "node:fs";
const { symbols: c } = dlopen("libc.so.6", {
  setxattr: { args: [T.cstring, T.cstring, T.ptr, T.u64, T.i32], returns: T.i32 },
  getxattr: { args: [T.cstring, T.cstring, T.ptr, T.u64], returns: T.i64 },
  listxattr: { args: [T.cstring, T.ptr, T.u64], returns: T.i64 },
  removexattr: { args: [T.cstring, T.cstring], returns: T.i32 },
  mmap: { args: [T.ptr, T.u64, T.i32, T.i32, T.i32, T.i64], returns: T.ptr },
  msync: { args: [T.ptr, T.u64, T.i32], returns: T.i32 },
  munmap: { args: [T.ptr, T.u64], returns: T.i32 },
});
const s = (x) => ptr(Buffer.from(x + "\\0"));
const check = (name, okay, detail = "") => console.log("CHECK " + name + " " + (okay ? "ok" : "FAIL " + detail));
const [dir] = process.argv.slice(2);
const f = dir + "/xattr.txt";
const v = Buffer.from("from-the-guest");
check("setxattr", c.setxattr(s(f), s("user.guest"), ptr(v), v.length, 0) === 0);
const buf = Buffer.alloc(256);
const n = Number(c.getxattr(s(f), s("user.guest"), ptr(buf), 256));
check("getxattr", buf.toString("utf8", 0, Math.max(n, 0)) === "from-the-guest", String(n));
const h = Number(c.getxattr(s(f), s("user.host"), ptr(buf), 256));
check("getxattr-host", buf.toString("utf8", 0, Math.max(h, 0)) === "from-the-host", String(h));
const l = Number(c.listxattr(s(f), ptr(buf), 256));
check("listxattr", buf.toString("utf8", 0, Math.max(l, 0)).split("\\0").includes("user.guest"));
c.setxattr(s(f), s("user.gone"), ptr(v), 1, 0);
check("removexattr", c.removexattr(s(f), s("user.gone")) === 0 && Number(c.getxattr(s(f), s("user.gone"), ptr(buf), 256)) < 0);
// mmap: read what the host wrote, write through a shared mapping, msync.
const fd = openSync(dir + "/mapped.bin", "r+");
const p = c.mmap(null, 4096, 3 /* PROT_READ|PROT_WRITE */, 1 /* MAP_SHARED */, fd, 0);
const m = new Uint8Array(toArrayBuffer(p, 0, 4096));
check("mmap-read", Buffer.from(m.subarray(0, 13)).toString() === "host contents");
m.set(Buffer.from("written through mmap"), 100);
check("msync", c.msync(p, 4096, 4 /* MS_SYNC */) === 0);
c.munmap(p, 4096);
closeSync(fd);
`;

beforeAll(async () => {
  for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
  writeFileSync(join(dirs.home, "homefile"), "in the home directory");
  writeFileSync(join(dirs.share, "hello.txt"), "hello from the host");
  writeFileSync(join(dirs.share, "edit.txt"), "v1");
  writeFileSync(join(dirs.share, "fs-ops.js"), FS_OPS_JS);
  writeFileSync(join(dirs.share, "xattr.txt"), "x");
  writeFileSync(join(dirs.share, "mapped.bin"), Buffer.concat([Buffer.from("host contents"), Buffer.alloc(4096 - 13)]));
  writeFileSync(join(dirs.ro, "ro.txt"), "read only");
  writeFileSync(join(dirs.outside, "marker"), SECRET);
  writeFileSync(join(dirs.later, "later.txt"), "added later");
  // Host-side symlinks that point out of the share.
  symlinkSync(join(dirs.outside, "marker"), join(dirs.share, "escape-abs"));
  symlinkSync("../outside/marker", join(dirs.share, "escape-rel"));
  symlinkSync(dirs.outside, join(dirs.share, "escape-dir"));
  const x = Bun.spawnSync(["python3", "-c", `import os; os.setxattr(${JSON.stringify(join(dirs.share, "xattr.txt"))}, "user.host", b"from-the-host")`]);
  if (x.exitCode !== 0) throw new Error(`host setxattr: ${x.stderr}`);

  // Boots under TCG on a loaded host can pass vmm's default 120 s wait for the agent.
  d = new TestDaemon("arcbox-mshare-d-", { ARCBOX_MACHINE_BOOT_TIMEOUT_MS: String(BOOT_MS - 20_000) });
  await d.start();
  clients = new ServiceClients(arcboxHome(d.home));
  await d.importBusybox(IMAGE);
}, 120_000);

afterAll(async () => {
  await d?.arcbox(["machine", "rm", "-f", "m1", "m2"]).catch(() => {});
  await d?.dispose();
  rmSync(root, { recursive: true, force: true });
}, 120_000);

describe("bad input leaves nothing behind", () => {
  test("missing or relative host dir, relative, reserved or duplicate guest dir, bad options", async () => {
    const base = ["create", "x1", "--image", IMAGE, "--no-start"];
    expectFail(await machine([...base, "--mount", `${root}/nope:/x`]), new RegExp(`host directory '${root}/nope' does not exist`));
    expectFail(await machine([...base, "--mount", "nope:/x"], { cwd: root }), new RegExp(`host directory '${root}/nope' does not exist`));
    expectFail(await machine([...base, "--mount", `${dirs.share}:x`]), /guest directory 'x' is not absolute/);
    expectFail(await machine([...base, "--mount", `${dirs.share}:/x`, "--mount", `${dirs.ro}:/x/`]), /guest directory '\/x' is already a mount of this machine/);
    expectFail(await machine([...base, "--mount", `${dirs.share}:/proc/x`]), /inside \/proc, which the machine needs/);
    expectFail(await machine([...base, "--mount", `${dirs.share}:/`]), /root directory/);
    expectFail(await machine([...base, "--mount", dirs.share]), /invalid mount .*expected HOSTDIR:GUESTDIR/);
    expectFail(await machine([...base, "--mount", `${dirs.share}:/x:rw,cache=sometimes`]), /unknown cache mode 'sometimes'/);
    expectFail(await machine(["mount", "add", "x1", `${dirs.share}:/x`]), /no such machine: x1/);
    expect(JSON.parse(await ok(["ls", "--format", "json"]))).toEqual([]);
    expect(existsSync(join(d.home, "data", "vmm", "machines")) ? readdirSync(join(d.home, "data", "vmm", "machines")) : []).toEqual([]);
    expect(await listShares("x1")).toEqual([]);
  });
});

describe("a machine with shares", () => {
  let pid = 0;

  test(
    "create: --mount (a relative HOSTDIR from the cwd) plus the home directory by default",
    async () => {
      const started = performance.now();
      await ok(["create", "m1", "--image", IMAGE, "--cpus", "1", "--memory", "512", "--disk", "1", "--mount", `share:${G}`, "--mount", "./ro:/mnt/ro:ro,cache=never"], { cwd: root });
      console.log(`machine create with 3 shares (disk + boot to agent): ${Math.round(performance.now() - started)} ms`);
      const m = await inspect("m1");
      expect(m.State).toBe("running");
      expect(m.Mounts).toEqual([
        { Tag: "s0", Source: dirs.share, Destination: G, RW: true, Cache: "auto" },
        { Tag: "s1", Source: dirs.ro, Destination: "/mnt/ro", RW: false, Cache: "never" },
        { Tag: "s2", Source: dirs.home, Destination: dirs.home, RW: true, Cache: "auto" },
      ]);
      pid = m.Pid;
      const argv = procArgs(pid).join(" ");
      expect(argv).toContain("memory-backend-memfd,id=mem,size=512M,share=on");
      expect(argv).toContain("virtio-mmio.force-legacy=false");
      expect(argv.match(/vhost-user-fs-device/g)?.length).toBe(3);
      expect(argv).toContain("arcbox.mounts=s0:/mnt/share,s1:/mnt/ro:ro,s2:");
      const shares = await listShares("m1");
      expect(shares.map((s) => [s.tag, s.state, s.connected]).sort()).toEqual([
        ["s0", "running", true],
        ["s1", "running", true],
        ["s2", "running", true],
      ]);
      expect([...servers("m1").values()].sort()).toEqual(["s0", "s1", "s2"]);
    },
    BOOT_MS,
  );

  test("the first exec already sees every share at its guest directory", async () => {
    // No exec ran before this one: the guest mounted the shares before its agent answered.
    const out = (await ok(["exec", "m1", "--", "sh", "-c", `cat ${G}/hello.txt; echo; cat ${dirs.home}/homefile; echo; grep virtiofs /proc/mounts`])).split("\n");
    expect(out[0]).toBe("hello from the host");
    expect(out[1]).toBe("in the home directory");
    expect(out.filter((l) => l.includes(" virtiofs ")).map((l) => `${l.split(" ").slice(0, 2).join(" ")} ${l.split(" ")[3]!.split(",")[0]}`)).toEqual([
      "s0 /mnt/share rw",
      "s1 /mnt/ro ro",
      `s2 ${dirs.home} rw`,
    ]);
  });

  test("read, write, rename, symlink, hard link and fsync through the share", async () => {
    const r = await guest(
      "m1",
      `export M=${G}
check() { n=$1; shift; if out=$("$@" 2>&1); then echo "CHECK $n ok"; else echo "CHECK $n FAIL $out"; fi; }
check read sh -c '[ "$(cat $M/hello.txt)" = "hello from the host" ]'
check write sh -c 'echo "written by the guest" > $M/new.txt && [ "$(cat $M/new.txt)" = "written by the guest" ]'
check append sh -c 'echo more >> $M/new.txt'
check rename sh -c 'mv $M/new.txt $M/renamed.txt && [ ! -e $M/new.txt ]'
check symlink sh -c 'ln -s renamed.txt $M/link && [ "$(readlink $M/link)" = renamed.txt ] && [ "$(head -1 $M/link)" = "written by the guest" ]'
check hardlink sh -c 'ln $M/renamed.txt $M/hard && [ "$(stat -c %h $M/renamed.txt)" = 2 ] && [ "$(stat -c %i $M/hard)" = "$(stat -c %i $M/renamed.txt)" ]'
check mkdir sh -c 'mkdir -p $M/dir/sub && echo deep > $M/dir/sub/f && rm -r $M/dir && [ ! -e $M/dir ]'
check fsync-dd sh -c 'dd if=/dev/zero of=$M/synced.bin bs=4096 count=16 conv=fsync 2>/dev/null'
check fsync-sync sh -c 'echo synced > $M/synced.txt && sync $M/synced.txt'
echo DONE`,
    );
    expect(r.stdout).toContain("DONE");
    expect(checks(r.stdout)).toEqual([]);
    // The host sees every change.
    expect(readFileSync(join(dirs.share, "renamed.txt"), "utf8")).toBe("written by the guest\nmore\n");
    expect(existsSync(join(dirs.share, "new.txt"))).toBe(false);
    expect(readlinkSync(join(dirs.share, "link"))).toBe("renamed.txt");
    expect(statSync(join(dirs.share, "hard")).ino).toBe(statSync(join(dirs.share, "renamed.txt")).ino);
    expect(statSync(join(dirs.share, "synced.bin")).size).toBe(65536);
    expect(readFileSync(join(dirs.share, "synced.txt"), "utf8")).toBe("synced\n");
    // A hard link the host makes is one file in the guest too.
    linkSync(join(dirs.share, "hello.txt"), join(dirs.share, "hello-link.txt"));
    expect((await ok(["exec", "m1", "--", "stat", "-c", "%h", `${G}/hello-link.txt`])).trim()).toBe("2");
  });

  test("xattrs and mmap through the share (the guest's Bun, bun:ffi)", async () => {
    const r = await machine(["exec", "m1", "--", "/opt/arcbox/bin/bun", `${G}/fs-ops.js`, G]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.trim().split("\n");
    expect(lines.filter((l) => l.startsWith("CHECK")).length).toBe(7);
    expect(checks(r.stdout)).toEqual([]);
    const py = Bun.spawnSync(["python3", "-c", `import os; print(os.getxattr(${JSON.stringify(join(dirs.share, "xattr.txt"))}, "user.guest").decode())`]);
    expect(py.stdout.toString().trim()).toBe("from-the-guest");
    expect(readFileSync(join(dirs.share, "mapped.bin")).subarray(100, 120).toString()).toBe("written through mmap");
  });

  test("host-side edits reach the guest within about a second", async () => {
    // The guest reads (and caches) v1, says READY, then polls; the host then writes v2
    // and creates a new file. The guest's own clock measures READY -> seen.
    const p = Bun.spawn(
      [
        ARCBOX,
        "--home",
        d.home,
        "machine",
        "exec",
        "m1",
        "--",
        "sh",
        "-c",
        `M=${G}
cat $M/edit.txt; ls $M/appeared.txt 2>/dev/null; echo; echo READY
t0=$(cut -d' ' -f1 /proc/uptime); i=0
while [ "$(cat $M/edit.txt)" != v2 ] || [ ! -e $M/appeared.txt ]; do usleep 20000; i=$((i+1)); [ $i -gt 500 ] && break; done
t1=$(cut -d' ' -f1 /proc/uptime)
echo "SEEN $(cat $M/edit.txt) $(cat $M/appeared.txt) $t0 $t1"`,
      ],
      { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } },
    );
    let out = "";
    const dec = new TextDecoder();
    let wrote = false;
    for await (const chunk of p.stdout) {
      out += dec.decode(chunk);
      if (!wrote && out.includes("READY")) {
        writeFileSync(join(dirs.share, "edit.txt"), "v2");
        writeFileSync(join(dirs.share, "appeared.txt"), "new");
        wrote = true;
      }
    }
    expect(await p.exited).toBe(0);
    expect(out.startsWith("v1\n")).toBe(true);
    const m = /SEEN (\S+) (\S+) ([\d.]+) ([\d.]+)/.exec(out);
    expect(m?.slice(1, 3)).toEqual(["v2", "new"]);
    const seconds = Number(m![4]) - Number(m![3]);
    console.log(`host edit seen in the guest after ${seconds.toFixed(2)} s (cache=auto)`);
    // auto: 1 s entry/attr timeouts. The measure also holds READY's trip to the host
    // (guest agent -> vmm -> CLI -> test) and the polling: ~0.2-0.4 s on an idle TCG
    // host, up to ~1 s more on a loaded one. cache=always (1 day) would not get here.
    expect(seconds).toBeLessThan(2.5);
  });

  test("host-side symlinks and .. never reach the marker outside the share", async () => {
    const r = await guest(
      "m1",
      `M=${G}
cat $M/escape-abs; cat $M/escape-rel; cat $M/escape-dir/marker; ls $M/escape-dir/
cat $M/../outside/marker; cat $M/../../outside/marker; (cd $M/.. && cat outside/marker)
echo pwned > $M/escape-abs; echo pwned > $M/escape-rel; echo pwned > $M/escape-dir/marker; echo pwned > $M/escape-dir/planted
cp $M/escape-abs $M/copied; ln $M/escape-abs $M/hardlink-to-link
echo ESCAPES-DONE`,
    );
    expect(r.stdout + r.stderr).toContain("ESCAPES-DONE");
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    expect(readFileSync(join(dirs.outside, "marker"), "utf8")).toBe(SECRET);
    expect(readdirSync(dirs.outside)).toEqual(["marker"]);
    // The links are still links to the same place: nothing was written through them on the host.
    expect(readlinkSync(join(dirs.share, "escape-abs"))).toBe(join(dirs.outside, "marker"));
    expect(lstatSync(join(dirs.share, "escape-dir")).isSymbolicLink()).toBe(true);
    if (existsSync(join(dirs.share, "copied"))) expect(readFileSync(join(dirs.share, "copied"), "utf8")).not.toContain(SECRET);
  });

  test("the read-only share refuses writes with EROFS", async () => {
    const cmds = ["echo x > /mnt/ro/ro.txt", "echo x > /mnt/ro/new.txt", "mkdir /mnt/ro/d", "rm /mnt/ro/ro.txt", "mv /mnt/ro/ro.txt /mnt/ro/moved", "ln -s x /mnt/ro/s", "touch /mnt/ro/ro.txt"];
    // Each must fail, and with EROFS.
    const r = await guest(
      "m1",
      cmds
        .map((c) => `if out=$( (${c}) 2>&1); then echo "CHECK ${c} FAIL succeeded"; else case "$out" in *"Read-only file system"*) echo "CHECK ${c} ok";; *) echo "CHECK ${c} FAIL $out";; esac; fi`)
        .join("\n"),
    );
    expect(r.stdout.split("\n").filter((l) => l.endsWith(" ok")).length).toBe(cmds.length);
    expect(checks(r.stdout)).toEqual([]);
    expect(await ok(["exec", "m1", "--", "cat", "/mnt/ro/ro.txt"])).toBe("read only");
    expect(readdirSync(dirs.ro)).toEqual(["ro.txt"]);
    expect(readFileSync(join(dirs.ro, "ro.txt"), "utf8")).toBe("read only");
  });

  test("guest memory freed in the machine goes back to the host (free page reporting on shared RAM)", async () => {
    const shmem = () => Number(/^Pss_Shmem:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0) / 1024;
    await ok(["exec", "m1", "--", "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=160"]);
    const full = shmem();
    await ok(["exec", "m1", "--", "rm", "/dev/shm/fill"]);
    const freed = await waitFor(
      "the guest's freed pages to be reported",
      async () => {
        const now = shmem();
        return full - now > 100 && now;
      },
      30_000,
    );
    console.log(`qemu shared RAM (PSS, MiB): ${full.toFixed(0)} with 160 MiB in the guest's tmpfs, ${freed.toFixed(0)} after rm`);
  }, 60_000);

  test("fsd killed with kill -9: the shares keep working and the next fsd re-adopts the same servers", async () => {
    const before = servers("m1");
    const old = await fsdPid();
    process.kill(old, "SIGKILL");
    await waitFor("fsd gone", async () => !alive(old));
    // No fsd now: the machine's servers serve on.
    const r = await guest("m1", `cat ${G}/hello.txt && echo "after fsd died" > ${G}/after-fsd.txt && echo OK`);
    expect(r.stdout).toBe("hello from the hostOK\n");
    expect(readFileSync(join(dirs.share, "after-fsd.txt"), "utf8")).toBe("after fsd died\n");
    // The next fsd (started on demand) reports the same server processes, none added.
    const listed = await listShares("m1");
    expect(await fsdPid()).not.toBe(old);
    expect(new Map(listed.map((s) => [s.pid, s.tag]))).toEqual(before);
    expect(listed.every((s) => s.state === "running" && s.connected)).toBe(true);
    expect(servers("m1")).toEqual(before);
  });

  test(
    "vmm killed with kill -9: the machine is re-adopted with its shares, not restarted or duplicated",
    async () => {
      const before = servers("m1");
      const status = (await d.arcbox(["status"])).stdout;
      const vmmPid = Number(/^vmm\s+(?:ready|running)\s+(\d+)/m.exec(status)?.[1]);
      expect(vmmPid).toBeGreaterThan(0);
      process.kill(vmmPid, "SIGKILL");
      await waitFor(
        "vmm restarted",
        async () => {
          const now = /^vmm\s+(?:ready|running)\s+(\d+)/m.exec((await d.arcbox(["status"])).stdout)?.[1];
          return now !== undefined && now !== String(vmmPid);
        },
        60_000,
      );
      const m = await inspect("m1");
      expect(m.State).toBe("running");
      expect(m.Pid).toBe(pid);
      expect(await ok(["exec", "m1", "--", "cat", `${G}/hello.txt`])).toBe("hello from the host");
      expect(servers("m1")).toEqual(before);
    },
    BOOT_MS,
  );

  test(
    "mount add and rm change the definition; they take effect on the next start",
    async () => {
      expect((await ok(["mount", "add", "m1", `${dirs.later}:/mnt/later:ro`])).trim()).toBe(`${dirs.later}:/mnt/later:ro`);
      expect((await ok(["mount", "rm", "m1", "/mnt/ro"])).trim()).toBe("/mnt/ro");
      expectFail(await machine(["mount", "rm", "m1", "/mnt/nothing"]), /machine m1 has no mount at \/mnt\/nothing/);
      expectFail(await machine(["mount", "add", "m1", `${dirs.later}:${G}`]), /guest directory '\/mnt\/share' is already a mount/);
      const ls = await ok(["mount", "ls", "m1"]);
      expect(ls).toMatch(/^s0\s+\S+\/share\s+\/mnt\/share\s+rw\s+auto$/m);
      // s1 was still taken when the new mount got its tag.
      expect(ls).toMatch(/^s3\s+\S+\/later\s+\/mnt\/later\s+ro\s+auto$/m);
      expect(ls).not.toContain("/mnt/ro ");
      // Running: nothing changed in the guest yet.
      expect((await ok(["exec", "m1", "--", "sh", "-c", "grep -o ' /mnt/[a-z]* ' /proc/mounts | sort"])).replaceAll(" ", "")).toBe("/mnt/ro\n/mnt/share\n");

      const before = servers("m1");
      await ok(["restart", "m1"]);
      pid = (await inspect("m1")).Pid;
      // The stop ended every server (a fresh one per share for the new qemu).
      expect([...servers("m1").keys()].filter((p) => before.has(p))).toEqual([]);
      expect((await ok(["exec", "m1", "--", "sh", "-c", "grep -o ' /mnt/[a-z]* ' /proc/mounts | sort"])).replaceAll(" ", "")).toBe("/mnt/later\n/mnt/share\n");
      expect(await ok(["exec", "m1", "--", "cat", "/mnt/later/later.txt"])).toBe("added later");
      // The removed share's server is gone; the others serve the new qemu.
      expect((await listShares("m1")).map((s) => [s.tag, s.hostDir, s.connected]).sort()).toEqual([
        ["s0", dirs.share, true],
        ["s2", dirs.home, true],
        ["s3", dirs.later, true],
      ]);
      expect([...servers("m1").values()].sort()).toEqual(["s0", "s2", "s3"]);
    },
    BOOT_MS * 2,
  );

  test(
    "a crash of the machine stops its share servers; the next start brings them back",
    async () => {
      process.kill(pid, "SIGKILL");
      const m = await waitFor(
        "m1 stopped",
        async () => {
          const now = await inspect("m1");
          return now.State === "stopped" && now;
        },
        60_000,
      );
      expect(m.StopReason).toMatch(/^crashed: /);
      await waitFor("m1's share servers to end", async () => servers("m1").size === 0);
      expect(await listShares("m1")).toEqual([]);
      await ok(["start", "m1"]);
      pid = (await inspect("m1")).Pid;
      expect(await ok(["exec", "m1", "--", "cat", `${G}/hello.txt`])).toBe("hello from the host");
      expect([...servers("m1").values()].sort()).toEqual(["s0", "s2", "s3"]);
    },
    BOOT_MS,
  );

  test(
    "rm -f of the running machine leaves no share server behind",
    async () => {
      expect((await ok(["rm", "-f", "m1"])).trim()).toBe("m1");
      expect(alive(pid)).toBe(false);
      expect(await listShares("m1")).toEqual([]);
      expect(servers("m1").size).toBe(0);
    },
    BOOT_MS,
  );
});

describe("--no-home", () => {
  test(
    "a machine without shares: no home directory, no virtiofs, no vhost-user device",
    async () => {
      await ok(["create", "m2", "--image", IMAGE, "--cpus", "1", "--memory", "256", "--disk", "1", "--no-home"]);
      const m = await inspect("m2");
      expect(m.Mounts).toEqual([]);
      const argv = procArgs(m.Pid).join(" ");
      expect(argv).not.toContain("vhost-user-fs");
      // Guest RAM is a memfd on every Linux machine (4 KiB free page reporting), but
      // nothing else of vhost-user's.
      expect(argv).toContain("memory-backend-memfd");
      expect(argv).not.toContain("force-legacy");
      expect(argv).not.toContain("arcbox.mounts=");
      const r = await guest("m2", `grep -c virtiofs /proc/mounts; [ -e ${dirs.home}/homefile ] && echo HOME-VISIBLE; echo END`);
      expect(r.stdout).toBe("0\nEND\n");
      expect(await listShares("m2")).toEqual([]);
      await ok(["rm", "-f", "m2"]);
    },
    BOOT_MS,
  );
});
