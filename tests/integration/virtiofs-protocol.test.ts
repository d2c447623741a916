/**
 * arcbox-virtiofsd's security at the protocol level: a minimal vhost-user front-end
 * (tests/helpers/virtiofs/frontend.c, playing qemu) sends the FUSE requests a Linux guest
 * never would — "..", names with '/', opens of symlink inodes, lookups and renames
 * through host-side symlinks, bogus handles and node ids — plus a lookup/rename race
 * and a read-only share. Nothing may reach the marker outside the share.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Subprocess } from "bun";
import { startVirtiofsd, virtiofsGuest } from "../helpers/virtiofs-vm.ts";

const root = mkdtempSync("/tmp/arcbox-vfs-proto-");
const share = join(root, "share"),
  ro = join(root, "ro"),
  outside = join(root, "outside");
const servers: Subprocess[] = [];
let frontend: string;
const EACCES = 13,
  ENOENT = 2,
  EBADF = 9,
  EINVAL = 22,
  ENOTDIR = 20,
  EROFS = 30;
const VIRTIOFSD = join(import.meta.dir, "../../native/bin/arcbox-virtiofsd");

/** Runs the front-end against a socket; `onWait` runs at each "wait" op before it continues. */
async function session(sock: string, ops: string[], onWait?: () => void): Promise<Map<string, string>> {
  const p = Bun.spawn([frontend, sock, ...ops], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  const out: string[] = [];
  let pending = "";
  for await (const chunk of p.stdout) {
    pending += new TextDecoder().decode(chunk);
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line === "wait") {
        onWait?.();
        p.stdin.write("go\n");
        p.stdin.flush();
      } else out.push(line);
    }
  }
  const code = await p.exited;
  if (code !== 0) throw new Error(`frontend exited ${code}: ${await new Response(p.stderr).text()}`);
  return new Map(
    out.map((l) => {
      const i = l.indexOf(" ");
      return [l.slice(0, i), l.slice(i + 1)] as const;
    }),
  );
}
const err = (n: number) => `err=${n}`;

beforeAll(async () => {
  frontend = join(dirname((await virtiofsGuest()).probe), "frontend");
  for (const d of [share, ro, outside, join(share, "sub")]) mkdirSync(d, { recursive: true });
  writeFileSync(join(outside, "marker"), "SECRET");
  writeFileSync(join(share, "a"), "inside");
  writeFileSync(join(share, "sub", "inner"), "in sub");
  writeFileSync(join(ro, "r"), "read only");
  symlinkSync(join(outside, "marker"), join(share, "esc"));
  symlinkSync(outside, join(share, "escdir"));
  servers.push(await startVirtiofsd({ socket: join(root, "rw.sock"), dir: share }));
  servers.push(await startVirtiofsd({ socket: join(root, "ro.sock"), dir: ro, readOnly: true }));
  servers.push(await startVirtiofsd({ socket: join(root, "never.sock"), dir: share, cache: "never" }));
  servers.push(await startVirtiofsd({ socket: join(root, "serial.sock"), dir: share, binary: [VIRTIOFSD, "--socket", join(root, "serial.sock"), "--shared-dir", share, "--threads", "0"] }));
});

afterAll(() => {
  for (const s of servers) s.kill();
  rmSync(root, { recursive: true, force: true });
});

test("names that climb or contain '/' are refused", async () => {
  const r = await session(join(root, "rw.sock"), ["init", "lookup:1:..", "lookup:1:.", "lookup:1:../outside", "lookup:1:sub/../../outside", "mkdir:1:..", "create:1:x/y", "lookup:1:", "lookup:1:a"]);
  expect(r.get("init")).toBe("ok");
  expect(r.get("lookup:1:..")).toBe(err(EACCES));
  expect(r.get("lookup:1:.")).toBe(err(EACCES));
  expect(r.get("lookup:1:../outside")).toBe(err(EINVAL));
  expect(r.get("lookup:1:sub/../../outside")).toBe(err(EINVAL));
  expect(r.get("mkdir:1:..")).toBe(err(EACCES));
  expect(r.get("create:1:x/y")).toBe(err(EINVAL));
  expect(r.get("lookup:1:")).toBe(err(EINVAL));
  expect(r.get("lookup:1:a")).toStartWith("ok nodeid=");
});

test("host-side symlinks are inodes of their own, never followed", async () => {
  const r = await session(join(root, "rw.sock"), [
    "init",
    "lookup:1:esc",
    "open:$1:0",
    "readlink:$1",
    "lookup:1:escdir",
    "lookup:$4:marker",
    "opendir:$4",
    "rename:1:a:$4:moved",
    "link:$1:1:hardlink-to-link",
    "create:$4:planted",
    "symlink:$4:s:x",
    "lookup:1:a",
  ]);
  expect(r.get("lookup:1:esc")).toMatch(/^ok nodeid=\d+ mode=0120777$/); // the link itself
  expect(r.get("open:$1:0")).toBe(err(EACCES));
  expect(r.get("readlink:$1")).toBe(`ok data=${join(outside, "marker")}`); // only the guest interprets it
  expect(r.get("lookup:1:escdir")).toMatch(/mode=0120777$/);
  expect(r.get("lookup:$4:marker")).toBe(err(ENOTDIR));
  expect(r.get("opendir:$4")).toBe(err(ENOTDIR));
  expect(r.get("rename:1:a:$4:moved")).toBe(err(ENOTDIR)); // a rename cannot move anything out
  expect(r.get("create:$4:planted")).toBe(err(ENOTDIR));
  expect(r.get("symlink:$4:s:x")).toBe(err(ENOTDIR));
  expect(r.get("link:$1:1:hardlink-to-link")).toMatch(/mode=0120777$/); // links the symlink, not its target
  expect(statSync(join(outside, "marker")).nlink).toBe(1);
  expect(readFileSync(join(outside, "marker"), "utf8")).toBe("SECRET");
  expect(readdirSync(outside)).toEqual(["marker"]);
  expect(readFileSync(join(share, "a"), "utf8")).toBe("inside");
});

test("bogus handles and node ids are errors, not someone else's fds", async () => {
  const r = await session(join(root, "rw.sock"), ["init", "read:0:0:10", "read:3:0:10", "read:999:0:10", "write:4:0:x", "getattr:77777", "lookup:4242:a"]);
  expect(r.get("read:0:0:10")).toBe(err(EBADF));
  expect(r.get("read:3:0:10")).toBe(err(EBADF)); // a raw fd number (the server's own sockets) is not a handle
  expect(r.get("read:999:0:10")).toBe(err(EBADF));
  expect(r.get("write:4:0:x")).toBe(err(EBADF));
  expect(r.get("getattr:77777")).toBe(err(ENOENT));
  expect(r.get("lookup:4242:a")).toBe(err(ENOENT));
});

test("a directory swapped for a symlink after lookup stays the directory it was", async () => {
  // Look up sub, then on the host move sub away and put a symlink to outside in its
  // place: the guest's node still is the original directory (an O_PATH fd), not a path.
  const r = await session(join(root, "rw.sock"), ["init", "lookup:1:sub", "wait", "lookup:$1:marker", "lookup:$1:inner", "create:$1:new", "lookup:1:sub"], () => {
    renameSync(join(share, "sub"), join(share, "sub-moved"));
    symlinkSync(outside, join(share, "sub"));
  });
  expect(r.get("lookup:$1:marker")).toStartWith("ok nodeid=0 "); // a negative entry: no such name
  expect(r.get("lookup:$1:inner")).toStartWith("ok");
  expect(r.get("create:$1:new")).toStartWith("ok");
  expect(r.get("lookup:1:sub")).toMatch(/mode=0120777$/);
  expect(existsSync(join(share, "sub-moved", "new"))).toBe(true);
  expect(readdirSync(outside)).toEqual(["marker"]);
});

test("an open with O_TRUNC truncates atomically (FUSE_ATOMIC_O_TRUNC)", async () => {
  writeFileSync(join(share, "t"), "long content");
  const r = await session(join(root, "rw.sock"), ["init", "lookup:1:t", "open:$1:513", "getattr:$1", "write:$2:0:new"]);
  expect(r.get("getattr:$1")).toBe("ok mode=0100644 size=0");
  expect(readFileSync(join(share, "t"), "utf8")).toBe("new");
});

test("close sends no FLUSH except for O_RDWR opens (FOPEN_NOFLUSH)", async () => {
  // FLUSH would only push a shared writable mmap's dirty pages, and only an O_RDWR
  // descriptor can have one; every other open skips the round trip.
  writeFileSync(join(share, "nf"), "x");
  const r = await session(join(root, "rw.sock"), ["init", "lookup:1:nf", "open:$1:0", "open:$1:1", "open:$1:2", "create:1:nf-new"]);
  const flags = (op: string) => Number(/open_flags=(0x[0-9a-f]+)/.exec(r.get(op) ?? "")?.[1]);
  const FOPEN_NOFLUSH = 1 << 5;
  expect(flags("open:$1:0") & FOPEN_NOFLUSH).toBe(FOPEN_NOFLUSH);
  expect(flags("open:$1:1") & FOPEN_NOFLUSH).toBe(FOPEN_NOFLUSH);
  expect(flags("open:$1:2") & FOPEN_NOFLUSH).toBe(0);
  expect(flags("create:1:nf-new") & FOPEN_NOFLUSH).toBe(0); // the front-end creates O_RDWR
});

test("a miss is a negative entry cached at most 1 s; cache=never caches none", async () => {
  const r = await session(join(root, "rw.sock"), ["init", "lookup:1:no-such-name"]);
  expect(r.get("lookup:1:no-such-name")).toBe("ok nodeid=0 mode=00 entry_valid=1.000000000");
  const never = await session(join(root, "never.sock"), ["init", "lookup:1:no-such-name"]);
  expect(never.get("lookup:1:no-such-name")).toBe(err(ENOENT));
});

test("a read-only share answers EROFS to every change", async () => {
  const r = await session(join(root, "ro.sock"), [
    "init",
    "lookup:1:r",
    "open:$1:0",
    "read:$2:0:100",
    "open:$1:1",
    "open:$1:2",
    "open:$1:512",
    "mkdir:1:d",
    "create:1:c",
    "unlink:1:r",
    "rename:1:r:1:s",
    "link:$1:1:l",
    "symlink:1:s:x",
    "setattr-size:$1:0",
    "write:$2:0:x",
  ]);
  expect(r.get("read:$2:0:100")).toBe("ok data=read only");
  for (const op of ["open:$1:1", "open:$1:2", "open:$1:512", "mkdir:1:d", "create:1:c", "unlink:1:r", "rename:1:r:1:s", "link:$1:1:l", "symlink:1:s:x", "setattr-size:$1:0", "write:$2:0:x"])
    expect(`${op} ${r.get(op)}`).toBe(`${op} ${err(EROFS)}`);
  expect(readdirSync(ro)).toEqual(["r"]);
  expect(readFileSync(join(ro, "r"), "utf8")).toBe("read only");
});

test("requests in flight together are each answered once, a RELEASE among them closing nothing under a read", async () => {
  // 30 READs and then a RELEASE of the same handle, made available with one kick: the
  // worker pool answers them in any order, the RELEASE may even run first; every request
  // gets exactly one answer carrying its own unique, a read either sees the data or
  // EBADF, and afterwards the handle is gone. Same with --threads 0 (all on the queue thread).
  writeFileSync(join(share, "burst"), "b".repeat(8192));
  for (const sock of ["rw.sock", "serial.sock"]) {
    const r = await session(join(root, sock), ["init", "lookup:1:burst", "open:$1:0", "burst:$2:30", "read:$2:0:10", "open:$1:0", "read:$5:0:4"]);
    const m = /^ok answered=(\d+) matched=(\d+) full=(\d+) ebadf=(\d+)$/.exec(r.get("burst") ?? "");
    expect(m, `${sock}: ${r.get("burst")}`).not.toBeNull();
    const [answered, matched, full, ebadf] = m!.slice(1).map(Number);
    expect([answered, matched, full! + ebadf!]).toEqual([31, 31, 30]);
    expect(r.get("read:$2:0:10")).toBe(err(EBADF));
    expect(r.get("read:$5:0:4")).toBe("ok data=bbbb"); // the server still serves
  }
});
