/**
 * The guest side of machines, booted with qemu directly (no vmm): the kernel, initramfs
 * and tools image from scripts/build-guest.sh, a busybox root disk, and the agent
 * protocol over the virtio-serial chardev. KVM where it works, TCG (-cpu max) otherwise.
 * Also measures the time from qemu's spawn to the first successful exec, against a bare
 * boot of the same kernel to a trivial init.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeFrame } from "../../guest/protocol/frames.ts";
import { type AgentSession, machineExec } from "../helpers/agent-session.ts";
import { Machine, busyboxRootDisk, ensureGuestArtifacts, openSession, probeAccel } from "../helpers/qemu.ts";

const BOOT_TIMEOUT = 240_000;
let dir: string;
let machine: Machine;
let session: AgentSession;
let accel: "kvm" | "tcg";
let firstExecSeconds = 0;
let firstExecUname = "";

beforeAll(async () => {
  const g = ensureGuestArtifacts();
  dir = mkdtempSync(join(tmpdir(), "arcbox-vmguest-"));
  accel = await probeAccel(g.kernel);
  const disk = busyboxRootDisk(dir);
  // qemu's user-mode network has a DHCP server of its own (slirp, inside qemu: no traffic
  // leaves it here): it exercises stage 2's udhcpc and its lease script.
  const net = ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-device,netdev=n0"];
  machine = new Machine({ dir, name: "guest-test", rootDisk: disk, accel, extraArgs: net });
  // During boot the handshake waits for the agent to start: no reconnects.
  session = await openSession(machine, BOOT_TIMEOUT, BOOT_TIMEOUT);
  const r = await machineExec(session, ["uname", "-r"]);
  firstExecSeconds = (performance.now() - machine.spawnedAt) / 1000;
  firstExecUname = r.stdout.trim();
  console.log(`[vm-guest] ${accel}: first successful exec ${firstExecSeconds.toFixed(2)} s after qemu spawn`);
}, BOOT_TIMEOUT + 60_000);

afterAll(async () => {
  session?.close();
  if (machine && machine.proc.exitCode === null) await machine.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("exec runs in the VM: its kernel is not the host's", async () => {
  const host = Bun.spawnSync(["uname", "-r"]).stdout.toString().trim();
  expect(firstExecUname).toMatch(/cloud-amd64$/);
  expect(firstExecUname).not.toBe(host);
  const r = await machineExec(session, ["hostname"]);
  expect(r.stdout.trim()).toBe("guest-test");
});

test("stage 2 loads the remaining modules in the background and configures eth0 by DHCP", async () => {
  const wait = (cond: string) => `i=0; until ${cond}; do i=$((i+1)); [ $i -gt 600 ] && exit 1; sleep 0.1; done`;
  const r = await machineExec(session, [
    "sh",
    "-c",
    // udhcpc starts right after virtio_net; vsock's transport is the last module loaded.
    `${wait("grep -q '^vmw_vsock_virtio_transport ' /proc/modules")}; ${wait("ip -4 addr show eth0 | grep -q 'inet '")}; cut -d' ' -f1 /proc/modules; ip -4 addr show eth0; ip route`,
  ]);
  expect(r).toMatchObject({ exitCode: 0, stderr: "" });
  for (const m of ["virtio_net", "virtio_balloon", "overlay", "fuse", "virtiofs", "vmw_vsock_virtio_transport"]) expect(r.stdout.split("\n")).toContain(m);
  // slirp with restrict=on offers no router or DNS: the address and its subnet route.
  expect(r.stdout).toContain("inet 10.0.2.15/24");
  expect(r.stdout).toMatch(/10\.0\.2\.0\/24 dev eth0/);
}, 120_000);

test("exit codes and stderr", async () => {
  expect(await machineExec(session, ["sh", "-c", "echo oops >&2; exit 3"])).toEqual({ stdout: "", stderr: "oops\n", exitCode: 3 });
  expect((await machineExec(session, ["false"])).exitCode).toBe(1);
  await expect(session.call("machineExec", { execId: "vm-missing", args: ["/no/such/tool"] })).rejects.toMatchObject({ code: "not_found" });
});

test("stdin reaches the process and its EOF ends it", async () => {
  const r = await machineExec(session, ["sh", "-c", "wc -l; cat /proc/1/comm"], { stdin: "a\nb\nc\n" });
  expect(r.stdout.split("\n").map((l) => l.trim())).toEqual(["3", "arcbox-init", ""]);
});

test("a TTY with resize", async () => {
  // The resize and the input go after the shell has shown the first size (the exec's
  // answer comes as soon as it has started, before it has printed anything). The only
  // exec running: its output is the only io.
  let shown = "";
  let firstSize!: () => void;
  const sized = new Promise<void>((r) => (firstSize = r));
  const off = session.onIo((f) => {
    shown += f.data ? Buffer.from(f.data).toString() : "";
    if (shown.includes("25 90")) firstSize();
  });
  const r = await machineExec(session, ["sh", "-c", "tty; stty size; read x; stty size"], {
    tty: true,
    rows: 25,
    cols: 90,
    stdin: "",
    onStart: async (id) => {
      await sized;
      await session.call("machineExecResize", { execId: id, rows: 50, cols: 132 });
      session.sendIo({ sid: id, fd: 0, data: Buffer.from("go\n") });
    },
  }).finally(off);
  const lines = r.stdout.split(/\r?\n/).filter(Boolean);
  expect(lines[0]).toMatch(/^\/dev\/pts\/\d+$/);
  expect(lines).toContain("25 90");
  expect(lines.at(-1)).toBe("50 132");
});

test("the host disconnecting mid-session (even mid-frame) and reconnecting keeps the agent usable", async () => {
  // Between frames, reconnecting at once.
  session.close();
  session = await openSession(machine, 60_000);
  expect((await session.call("containerStates", {})).containers).toEqual([]);
  // A process that outlives the session, then half a frame, then the host goes away.
  await session.call("machineExec", { execId: "vm-survivor", args: ["sleep", "600"] });
  const partial = encodeFrame({ k: "req", id: 99, method: "containerStates", body: new Uint8Array(64) });
  session.socket.write(partial.subarray(0, partial.length - 20));
  await Bun.sleep(200);
  session.close();
  session = await openSession(machine, 60_000);
  expect((await session.call("containerStates", {})).containers).toEqual([]);
  expect((await machineExec(session, ["echo", "again"])).stdout).toBe("again\n");
  // The exec from the first session is still there, and its exit reaches the new one.
  await session.call("machineExecSignal", { execId: "vm-survivor", signal: "TERM" });
  expect((await session.waitEvent((e) => e.type === "machine_exec_exit" && e.execId === "vm-survivor")).exitCode).toBe(143);
}, 180_000);

test("Poweroff shuts the machine down: qemu exits", async () => {
  await session.call("poweroff", {});
  const code = await Promise.race([machine.proc.exited, Bun.sleep(60_000).then(() => "timeout")]);
  expect(code).not.toBe("timeout");
  expect(machine.console()).not.toContain("Kernel panic");
}, 90_000);

test("measure: bare boot of the same kernel to a trivial init", async () => {
  // An initramfs with only busybox and an /init that reboots at once (reboot=t: qemu exits).
  const stage = join(dir, "bare");
  mkdirSync(join(stage, "bin"), { recursive: true });
  copyFileSync("/bin/busybox", join(stage, "bin", "busybox"));
  writeFileSync(join(stage, "init"), "#!/bin/busybox sh\n/bin/busybox echo BARE-BOOT-OK\n/bin/busybox reboot -f\n");
  chmodSync(join(stage, "init"), 0o755);
  const initrd = join(dir, "bare.cpio");
  const cpio = Bun.spawnSync(["sh", "-c", `cd '${stage}' && find . | cpio -o -H newc --owner 0:0 --quiet > '${initrd}'`]);
  expect(cpio.exitCode).toBe(0);
  const bareDir = join(dir, "bare-vm");
  const bare = new Machine({ dir: bareDir, name: "bare", rootDisk: busyboxRootDisk(bareDir, 16), accel, initrd });
  await bare.proc.exited;
  const seconds = (performance.now() - bare.spawnedAt) / 1000;
  expect(bare.console()).toContain("BARE-BOOT-OK");
  console.log(`[vm-guest] ${accel}: bare boot to a trivial init and out ${seconds.toFixed(2)} s; first exec ${firstExecSeconds.toFixed(2)} s (${(firstExecSeconds / seconds).toFixed(2)}x)`);
}, 180_000);
