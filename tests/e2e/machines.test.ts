/**
 * `arcbox machine` end to end: the real CLI, vmm, imaged, netd and real qemu (KVM where
 * it works, TCG here) booting the guest kernel, initramfs and agent into a busybox
 * image imported through the real docker CLI. One machine is reused across tests to
 * keep the VM time down; a second one joins for the two-machine, crash and rm checks.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ARCBOX, TestDaemon, run, type RunResult } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";

const IMAGE = "machine-busybox:1";
const BOOT_MS = 180_000;
let d: TestDaemon;

const machine = (args: string[], opts?: Parameters<TestDaemon["arcbox"]>[1]) => d.arcbox(["machine", ...args], { timeoutMs: BOOT_MS, ...opts });
async function ok(args: string[], opts?: Parameters<TestDaemon["arcbox"]>[1]): Promise<string> {
  const r = await machine(args, opts);
  if (r.code !== 0) throw new Error(`arcbox machine ${args.join(" ")} (exit ${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const inspect = async (name: string) => JSON.parse(await ok(["inspect", name])) as Record<string, string | number>;
const machineDirs = () => {
  const dir = join(d.home, "data", "vmm", "machines");
  return existsSync(dir) ? Bun.spawnSync(["ls", dir]).stdout.toString().split("\n").filter(Boolean) : [];
};
const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  } catch {
    return [];
  }
};
const alive = (pid: number) => cmdline(pid).length > 1;
function expectFail(r: RunResult, message: RegExp): void {
  expect(r.code).not.toBe(0);
  expect(r.stderr).toMatch(message);
}

beforeAll(async () => {
  d = new TestDaemon("arcbox-machines-");
  await d.start();
  await d.importBusybox(IMAGE);
}, 120_000);

afterAll(async () => {
  await d?.arcbox(["machine", "rm", "-f", "m1", "m2"]).catch(() => {});
  await d?.dispose();
}, 120_000);

describe("bad input leaves nothing behind", () => {
  test("unknown image, invalid sizes, bad name", async () => {
    expectFail(await machine(["create", "x1", "--image", "no-such-image:1"]), /image no-such-image:1 is not present locally/);
    expectFail(await machine(["create", "x1", "--image", IMAGE, "--disk", "0"]), /invalid --disk '0'/);
    expectFail(await machine(["create", "x1", "--image", IMAGE, "--memory", "64"]), /--memory must be at least 128 MiB/);
    expectFail(await machine(["create", "x1", "--image", IMAGE, "--cpus", "two"]), /invalid --cpus 'two'/);
    expectFail(await machine(["create", "-bad", "--image", IMAGE]), /machine create takes exactly one NAME|unknown option|Unknown option/i);
    expectFail(await machine(["create", "bad/name", "--image", IMAGE]), /invalid machine name/);
    expectFail(await machine(["inspect", "x1"]), /no such machine: x1/);
    expect(JSON.parse(await ok(["ls", "--format", "json"]))).toEqual([]);
    expect(machineDirs()).toEqual([]);
  });
});

describe("one machine", () => {
  let pid = 0;

  test(
    "create boots it; ls and inspect show it",
    async () => {
      const started = performance.now();
      // --no-home: the checks below write /root (the test's $HOME) on the machine's own disk.
      expect((await ok(["create", "m1", "--image", IMAGE, "--cpus", "1", "--memory", "512", "--disk", "1", "--no-home"])).trim()).toBe("m1");
      console.log(`machine create (disk + boot to agent): ${Math.round(performance.now() - started)} ms`);
      const m = await inspect("m1");
      expect(m.State).toBe("running");
      expect(m.Image).toBe(IMAGE);
      expect(m.Cpus).toBe(1);
      expect(m.MemoryMiB).toBe(512);
      expect(m.DiskGiB).toBe(1);
      expect(["kvm", "tcg"]).toContain(m.Accel as string);
      // Where KVM does not work, inspect says why.
      if (m.Accel === "tcg") expect(m.AccelNote).toMatch(/kvm/);
      expect(Date.parse(m.Created as string)).toBeLessThanOrEqual(Date.parse(m.Started as string));
      pid = m.Pid as number;
      expect(cmdline(pid)[0]).toMatch(/qemu-system-/);
      expect(m.IP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
      const ls = await ok(["ls"]);
      expect(ls).toMatch(/^m1\s+running\s+machine-busybox:1\s+1\s+512MiB\s+1GiB\s/m);
      const vmmLog = readFileSync(join(d.home, "log", "vmm.log"), "utf8");
      if (m.Accel === "tcg") expect(vmmLog).toContain("machines run under TCG");
      // A duplicate name is refused and changes nothing.
      expectFail(await machine(["create", "m1", "--image", IMAGE]), /machine m1 already exists/);
      expect((await inspect("m1")).Pid).toBe(pid);
    },
    BOOT_MS,
  );

  test(
    "exec: a different kernel, exit codes, stdin, stderr",
    async () => {
      const host = Bun.spawnSync(["uname", "-r"]).stdout.toString().trim();
      const guest = (await ok(["exec", "m1", "--", "uname", "-r"])).trim();
      expect(guest).not.toBe(host);
      expect(guest).toMatch(/cloud-amd64|^\d+\.\d+/);
      expect((await machine(["exec", "m1", "--", "sh", "-c", "exit 7"])).code).toBe(7);
      const echo = await machine(["exec", "-i", "m1", "--", "sh", "-c", "cat; echo oops >&2"], { stdin: "hello from stdin\n" });
      expect(echo.code).toBe(0);
      expect(echo.stdout).toBe("hello from stdin\n");
      expect(echo.stderr).toBe("oops\n");
      expect((await machine(["exec", "m1", "--", "/no/such/binary"])).code).not.toBe(0);
      // A reader that leaves (`| head`) ends the CLI quietly with 141, as SIGPIPE ends
      // docker's; before, an EPIPE error dump on stderr and exit code 1.
      const head = await run(["bash", "-c", `${ARCBOX} --home ${d.home} machine exec m1 -- seq 1 200000 2>&1 | head -n 2; echo "exit \${PIPESTATUS[0]}"`], { timeoutMs: 60_000 });
      expect(head.stdout).toBe("1\n2\nexit 141\n");
    },
    BOOT_MS,
  );

  test(
    "exec -t gives a TTY (through script)",
    async () => {
      const r = await run(["script", "-qec", `${ARCBOX} --home ${d.home} machine exec -t m1 -- sh -c 'tty; stty size'`, "/dev/null"], { timeoutMs: 60_000 });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/\/dev\/pts\/\d+/);
    },
    BOOT_MS,
  );

  test(
    "exec -t follows the terminal's size (resize)",
    async () => {
      // A pty of 24x80 for the CLI; resized to 50x132 while the command waits, which sends
      // the CLI SIGWINCH. The guest's terminal must show the new size.
      const driver = `
import os, pty, sys, time, fcntl, termios, struct, select
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
out, resized, start = b"", False, time.time()
while time.time() - start < 60:
    if not resized and b"ready" in out:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
        resized = True
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.stdout.write("\\nexit %d\\n" % os.waitstatus_to_exitcode(status))
`;
      const script = "stty size; echo ready; while [ \"$(stty size)\" = '24 80' ]; do sleep 0.2; done; stty size";
      const r = await run(["/usr/bin/python3", "-c", driver, ARCBOX, "--home", d.home, "machine", "exec", "-t", "m1", "--", "sh", "-c", script], { timeoutMs: 90_000 });
      expect(r.stdout).toContain("24 80");
      expect(r.stdout).toContain("50 132");
      expect(r.stdout).toMatch(/exit 0\s*$/);
    },
    BOOT_MS,
  );

  test(
    "data survives stop and start; the stop reason is poweroff; the root disk is unmounted cleanly",
    async () => {
      await ok(["exec", "m1", "--", "sh", "-c", "echo kept > /root/persist && sync"]);
      // A process holding a file open for writing on the root disk (a plain remount
      // read-only fails with EBUSY then): the power-off must still leave ext4 clean.
      await ok(["exec", "m1", "--", "sh", "-c", "sleep 100000 3>>/root/held </dev/null >/dev/null 2>&1 &"]);
      // `logs -f` follows the console and ends when the machine stops.
      const follow = machine(["logs", "-f", "m1"]);
      await ok(["stop", "m1"]);
      const followed = await follow;
      expect(followed.code).toBe(0);
      expect(followed.stdout).toContain("arcbox-serial-relay");
      const stopped = await inspect("m1");
      expect(stopped.State).toBe("stopped");
      expect(stopped.StopReason).toBe("poweroff");
      expect(stopped.Pid).toBe(0);
      expect(alive(pid)).toBe(false);
      // Exec into a stopped machine: a clear error.
      expectFail(await machine(["exec", "m1", "--", "true"]), /machine m1 is not running \(it is stopped\)/);
      await ok(["start", "m1"]);
      const again = await inspect("m1");
      expect(again.State).toBe("running");
      expect(again.StopReason).toBe("");
      pid = again.Pid as number;
      expect((await ok(["exec", "m1", "--", "cat", "/root/persist"])).trim()).toBe("kept");
      // Clean at power-off: this boot's mount found no journal to replay.
      const kernelLog = await ok(["exec", "m1", "--", "dmesg"]);
      expect(kernelLog).toMatch(/EXT4-fs \(vda\): mounted filesystem/);
      expect(kernelLog).not.toMatch(/EXT4-fs \(vda\): recovery complete/);
    },
    BOOT_MS * 2,
  );

  test(
    "the machine keeps running through kill -9 of vmm and is adopted again",
    async () => {
      const status = (await d.arcbox(["status"])).stdout;
      const vmmPid = Number(/^vmm\s+(?:ready|running)\s+(\d+)/m.exec(status)?.[1]);
      expect(vmmPid).toBeGreaterThan(0);
      process.kill(vmmPid, "SIGKILL");
      // The supervisor restarts vmm; the next call reaches the new one.
      await waitFor("vmm restarted", async () => {
        const now = /^vmm\s+(?:ready|running)\s+(\d+)/m.exec((await d.arcbox(["status"])).stdout)?.[1];
        return now !== undefined && now !== String(vmmPid);
      });
      expect(alive(pid)).toBe(true);
      const m = await inspect("m1");
      expect(m.State).toBe("running");
      expect(m.Pid).toBe(pid);
      expect((await ok(["exec", "m1", "--", "cat", "/root/persist"])).trim()).toBe("kept");
      expect(readFileSync(join(d.home, "log", "vmm.log"), "utf8")).toContain("re-adopted machine");

      // The whole daemon too: the VM keeps running and vmm comes back for it by itself.
      expect((await d.arcbox(["stop"])).code).toBe(0);
      expect(alive(pid)).toBe(true);
      await d.start();
      await waitFor("vmm started for the machine", async () => /^vmm\s+(?:ready|running)\s+\d+/m.test((await d.arcbox(["status"])).stdout));
      const after = await inspect("m1");
      expect(after.State).toBe("running");
      expect(after.Pid).toBe(pid);
      expect((await ok(["exec", "m1", "--", "cat", "/root/persist"])).trim()).toBe("kept");
    },
    BOOT_MS,
  );

  test("logs shows the console", async () => {
    const out = await ok(["logs", "m1"]);
    expect(out.length).toBeGreaterThan(0);
  });
});

describe("two machines", () => {
  test(
    "a second machine runs beside the first; a crash is recorded; rm cleans up",
    async () => {
      await ok(["create", "m2", "--image", IMAGE, "--cpus", "1", "--memory", "256", "--disk", "1", "--no-home"]);
      const [a, b] = await Promise.all([ok(["exec", "m1", "--", "hostname"]), ok(["exec", "m2", "--", "hostname"])]);
      expect(a.trim()).toBe("m1");
      expect(b.trim()).toBe("m2");
      const m2 = await inspect("m2");
      const m2pid = m2.Pid as number;

      // Each got its address from netd's DHCP server, and they find each other by name.
      const ip1 = (await inspect("m1")).IP as string;
      await waitFor("m1's DHCP address on eth0", async () => (await machine(["exec", "m1", "--", "ip", "-4", "addr", "show", "eth0"])).stdout.includes(`inet ${ip1}/`), 60_000);
      await waitFor("m2's DHCP address on eth0", async () => (await machine(["exec", "m2", "--", "ip", "-4", "addr", "show", "eth0"])).stdout.includes(`inet ${m2.IP}/`), 60_000);
      const ping = await machine(["exec", "m2", "--", "ping", "-c", "1", "-W", "5", "m1"]);
      expect(ping.stdout).toContain(ip1);
      expect(ping.code).toBe(0);
      const tap = /ifname=([^,]+)/.exec(cmdline(m2pid).join(" "))?.[1];

      // A VM that dies under vmm is "stopped" with the reason.
      process.kill(m2pid, "SIGKILL");
      const crashed = await waitFor("m2 stopped", async () => {
        const m = await inspect("m2");
        return m.State === "stopped" && m;
      });
      expect(crashed.StopReason).toMatch(/^crashed: .*SIGKILL/);

      // rm of a running machine needs -f; rm -f leaves no process, disk or TAP.
      const m1pid = (await inspect("m1")).Pid as number;
      expectFail(await machine(["rm", "m1"]), /machine m1 is running: stop it first or remove it with -f/);
      expect(await ok(["rm", "-f", "m1", "m2"])).toBe("m1\nm2\n");
      expect(alive(m1pid)).toBe(false);
      expect(machineDirs()).toEqual([]);
      expect(JSON.parse(await ok(["ls", "--format", "json"]))).toEqual([]);
      if (tap) expect(Bun.spawnSync(["ip", "link", "show", tap]).exitCode).not.toBe(0);
    },
    BOOT_MS * 2,
  );
});
