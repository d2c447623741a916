/**
 * fsd's ShareService on a real daemon: StartShare runs an arcbox-virtiofsd that a real
 * qemu VM mounts; per-share metrics on fsd's debug socket; bad input; a killed server
 * is restarted; fsd killed with SIGKILL while a VM uses its shares leaves them working
 * and the next fsd re-adopts the servers; StopShare ends them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { TestDaemon } from "../helpers/daemon.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { arcboxHome, debugSocket } from "../../lib/home.ts";
import { waitFor } from "../helpers/wait.ts";
import { bootGuest } from "../helpers/virtiofs-vm.ts";

let d: TestDaemon;
let c: ServiceClients;
const dir = mkdtempSync("/tmp/arcbox-fsd-share-");
const rwDir = mkdtempSync("/tmp/arcbox-fsd-share-rw-");

const debug = (path: string) => fetch(`http://fsd${path}`, { unix: debugSocket(arcboxHome(d.home), "fsd") } as RequestInit);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function code(p: Promise<unknown>): Promise<Code | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e instanceof ConnectError ? e.code : Code.Unknown;
  }
}

beforeAll(async () => {
  writeFileSync(join(dir, "hello.txt"), "served by fsd");
  d = new TestDaemon("arcbox-fsd-shares-");
  await d.start();
  c = new ServiceClients(arcboxHome(d.home));
}, 60_000);

afterAll(async () => {
  await d.dispose();
  rmSync(dir, { recursive: true, force: true });
  rmSync(rwDir, { recursive: true, force: true });
});

test("StartShare runs a server a VM mounts, and is idempotent", async () => {
  const r = await c.shares.startShare({ machine: "m1", tag: "src", hostDir: dir, readOnly: true });
  expect(r.socketPath).toBe(join(d.home, "run", "vfs", "m1.src.sock"));
  expect(existsSync(r.socketPath)).toBe(true);
  expect(r.share?.state).toBe("running");
  expect(r.share?.cacheMode).toBe("auto");
  const again = await c.shares.startShare({ machine: "m1", tag: "src", hostDir: dir, readOnly: true });
  expect(again.share?.pid).toBe(r.share?.pid);
  const rw = await c.shares.startShare({ machine: "m1", tag: "rw", hostDir: rwDir, readOnly: false, cacheMode: "never" });

  // Midway the host kills fsd with SIGKILL: the servers are not fsd's children in any way
  // that matters (own session), so the machine's shares keep working, and the next fsd
  // re-adopts them.
  let fsdKilled = 0;
  const run = await bootGuest({
    shares: [
      { tag: "src", socket: r.socketPath },
      { tag: "rw", socket: rw.socketPath },
    ],
    script: `mkdir -p /mnt/ro /mnt/rw; mount -t virtiofs src /mnt/ro && mount -t virtiofs rw /mnt/rw && cat /mnt/ro/hello.txt && echo
echo x > /mnt/ro/new 2>&1
echo KILL-FSD
i=0; while [ ! -e /mnt/rw/go ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "AFTER $(cat /mnt/ro/hello.txt)"
echo "written after fsd died" > /mnt/rw/after.txt && echo WRITE-OK`,
    onLine: async (line) => {
      if (!line.startsWith("KILL-FSD")) return;
      const health = (await (await debug("/health")).json()) as { pid: number };
      process.kill(health.pid, "SIGKILL");
      await waitFor("fsd to be gone", async () => !alive(health.pid));
      fsdKilled = health.pid;
      writeFileSync(join(rwDir, "go"), "");
    },
  });
  expect(run.output).toContain("served by fsd");
  expect(run.output).toContain("Read-only file system");
  expect(existsSync(join(dir, "new"))).toBe(false);
  expect(fsdKilled).toBeGreaterThan(0);
  expect(run.output).toContain("AFTER served by fsd");
  expect(run.output).toContain("WRITE-OK");
  expect(readFileSync(join(rwDir, "after.txt"), "utf8")).toBe("written after fsd died\n");

  const listed = (await c.shares.listShares({ machine: "m1" })).shares; // a new fsd, re-adopted servers
  expect(listed.map((s) => s.tag).sort()).toEqual(["rw", "src"]);
  const src = listed.find((s) => s.tag === "src")!;
  expect(src.pid).toBe(r.share!.pid);
  expect(src.stats!.requests).toBeGreaterThan(3n);
  expect(src.stats!.bytesRead).toBe(BigInt(2 * "served by fsd".length));
  expect(src.connected).toBe(false); // the VM powered off
  expect((await c.shares.stopShare({ machine: "m1", tag: "rw" })).stopped).toEqual(["rw"]);
}, 300_000);

test("per-share metrics on fsd's debug socket", async () => {
  const text = await (await debug("/metrics")).text();
  expect(text).toContain('arcbox_fsd_share_up{machine="m1",tag="src"} 1');
  expect(text).toMatch(/arcbox_fsd_share_requests_total\{machine="m1",tag="src"\} [1-9]/);
  expect(text).toMatch(/arcbox_fsd_share_inode_fds\{machine="m1",tag="src"\} [1-9]/); // the share's root at least
  expect(text).toContain('arcbox_fsd_share_inode_evictions_total{machine="m1",tag="src"} 0');
  const state = (await (await debug("/state")).json()) as { shares: { tag: string; state: string }[] };
  expect(state.shares.map((s) => [s.tag, s.state])).toEqual([["src", "running"]]);
});

test("bad input is refused with invalid_argument", async () => {
  const base = { machine: "m1", tag: "t", hostDir: dir, readOnly: false, cacheMode: "" };
  expect(await code(c.shares.startShare({ ...base, tag: "x".repeat(37) }))).toBe(Code.InvalidArgument);
  expect(await code(c.shares.startShare({ ...base, tag: "a/b" }))).toBe(Code.InvalidArgument);
  expect(await code(c.shares.startShare({ ...base, machine: "../x" }))).toBe(Code.InvalidArgument);
  expect(await code(c.shares.startShare({ ...base, hostDir: "relative/dir" }))).toBe(Code.InvalidArgument);
  expect(await code(c.shares.startShare({ ...base, hostDir: join(dir, "missing") }))).toBe(Code.InvalidArgument);
  expect(await code(c.shares.startShare({ ...base, hostDir: join(dir, "hello.txt") }))).toBe(Code.InvalidArgument);
  expect(await code(c.shares.startShare({ ...base, cacheMode: "sometimes" }))).toBe(Code.InvalidArgument);
  expect((await c.shares.listShares({})).shares.map((s) => s.tag)).toEqual(["src"]);
});

test("a server killed with SIGKILL is restarted", async () => {
  const before = (await c.shares.listShares({ machine: "m1" })).shares[0]!;
  process.kill(before.pid, "SIGKILL");
  const after = await waitFor("the share server to come back", async () => {
    const s = (await c.shares.listShares({ machine: "m1" })).shares[0];
    return s && s.state === "running" && s.pid !== before.pid ? s : undefined;
  });
  expect(after.restarts).toBe(1);
  expect(existsSync(after.socketPath)).toBe(true);
});

test("fsd killed with SIGKILL re-adopts the running servers", async () => {
  const before = (await c.shares.listShares({ machine: "m1" })).shares[0]!;
  const health = (await (await debug("/health")).json()) as { pid: number };
  process.kill(health.pid, "SIGKILL");
  await waitFor("fsd to be gone", async () => !alive(health.pid));
  expect(alive(before.pid)).toBe(true); // the server outlives fsd (its own session)
  const s = await waitFor("fsd back with the share", async () => (await c.shares.listShares({ machine: "m1" }).catch(() => undefined))?.shares[0]);
  expect(s.pid).toBe(before.pid);
  expect(s.state).toBe("running");
  // An adopted server is not fsd's child: its exit arrives through its watch socket.
  process.kill(s.pid, "SIGKILL");
  const back = await waitFor("the adopted server to be restarted", async () => {
    const x = (await c.shares.listShares({ machine: "m1" })).shares[0];
    return x && x.state === "running" && x.pid !== s.pid ? x : undefined;
  });
  expect(back.restarts).toBe(1);
}, 60_000);

test("StopShare ends the server and removes its socket", async () => {
  const s = (await c.shares.listShares({ machine: "m1" })).shares[0]!;
  expect((await c.shares.stopShare({ machine: "m1" })).stopped).toEqual(["src"]);
  await waitFor("the server to exit", async () => !alive(s.pid));
  expect(existsSync(s.socketPath)).toBe(false);
  expect((await c.shares.listShares({})).shares).toEqual([]);
  expect((await c.shares.stopShare({ machine: "m1" })).stopped).toEqual([]);
});
