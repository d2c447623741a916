import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { qemuArgv } from "../../services/vmm/backend/qemu/qemu-argv.ts";
import { QmpClient, type QmpEvent } from "../../services/vmm/backend/qemu/qmp-client.ts";
import { logTail } from "../../services/vmm/backend/qemu/qemu-process.ts";
import type { MachineRecord } from "../../services/vmm/core/machine-model.ts";
import { assertTransition, canTransition, hasProcess } from "../../services/vmm/core/machine-state.ts";
import { MachineStore } from "../../services/vmm/storage/machine-store.ts";

const tmp = mkdtempSync(join(tmpdir(), "arcbox-vmm-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("machine state machine", () => {
  test("allows the lifecycle and refuses the rest with a conflict naming the machine", () => {
    expect(canTransition("created", "starting")).toBe(true);
    expect(canTransition("starting", "running")).toBe(true);
    expect(canTransition("running", "stopping")).toBe(true);
    expect(canTransition("stopping", "stopped")).toBe(true);
    expect(canTransition("stopped", "starting")).toBe(true);
    expect(canTransition("running", "stopped")).toBe(true); // a crash
    expect(canTransition("stopped", "running")).toBe(false);
    expect(canTransition("stopping", "running")).toBe(false);
    expect(canTransition("removing", "starting")).toBe(false);
    expect(() => assertTransition("m1", "stopping", "starting")).toThrow("cannot start machine m1: it is stopping");
    expect(hasProcess("running")).toBe(true);
    expect(hasProcess("stopped")).toBe(false);
  });
});

describe("qemu argv", () => {
  const spec = {
    name: "dev",
    dir: "/m/dev",
    cpus: 2,
    memoryMib: 512,
    rootDisk: "/m/dev/disk.img",
    toolsDisk: "/g/tools.img",
    kernel: "/g/vmlinuz",
    initrd: "/g/initramfs.img",
    cmdline: "console=ttyS0 quiet",
  };
  test("microvm with the contract's devices; root disk before tools; TCG uses -cpu max", () => {
    const argv = qemuArgv(spec, "tcg", "qemu-system-x86_64", false);
    const s = argv.join(" ");
    expect(argv.slice(argv.indexOf("-M"), argv.indexOf("-M") + 2)).toEqual(["-M", "microvm"]);
    expect(argv[argv.indexOf("-cpu") + 1]).toBe("max,erms=off");
    // TCG's code cache is bounded (qemu's default 1 GiB only grows).
    expect(argv[argv.indexOf("-accel") + 1]).toBe("tcg,tb-size=128");
    expect(s).toContain("-nodefaults -no-user-config -nographic");
    expect(s.indexOf("file=/m/dev/disk.img")).toBeLessThan(s.indexOf("file=/g/tools.img"));
    expect(s).toContain("file=/g/tools.img,format=raw,if=none,readonly=on");
    expect(s).toContain("socket,id=agent,path=/m/dev/agent.sock,server=on,wait=off");
    expect(s).toContain("virtserialport,chardev=agent,name=org.arcbox.agent.0");
    expect(s).toContain("file,id=console,path=/m/dev/console.log");
    expect(s).toContain("virtio-balloon-device,free-page-reporting=on");
    expect(s).toContain("-qmp unix:/m/dev/qmp.sock,server=on,wait=off -pidfile /m/dev/qemu.pid");
    expect(s).not.toContain("-netdev");
    // The guest learns the accelerator from its command line (stage 2 tunes Bun for TCG).
    expect(argv[argv.indexOf("-append") + 1]).toBe("console=ttyS0 quiet arcbox.accel=tcg");
  });
  test("KVM uses the host CPU; a NIC when netd gave a TAP; commas in paths are escaped", () => {
    const argv = qemuArgv({ ...spec, rootDisk: "/a,b/disk.img", net: { tap: "abxt0", mac: "52:54:00:12:34:56" } }, "kvm", "q");
    const s = argv.join(" ");
    expect(argv[argv.indexOf("-cpu") + 1]).toBe("host");
    expect(argv[argv.indexOf("-accel") + 1]).toBe("kvm");
    expect(s).toContain("file=/a,,b/disk.img,");
    expect(s).toContain("-netdev tap,id=n0,ifname=abxt0,script=no,downscript=no -device virtio-net-device,netdev=n0,mac=52:54:00:12:34:56");
  });
});

describe("machine store", () => {
  const rec = (name: string): MachineRecord => ({
    name,
    image: "busybox",
    imageId: "sha256:x",
    cpus: 1,
    memoryMib: 256,
    diskGib: 1,
    state: "created",
    backend: "qemu",
    accel: "",
    accelNote: "",
    pid: 0,
    mac: "",
    ip: "",
    createdMs: 1,
    startedMs: 0,
    stoppedMs: 0,
    stopReason: "",
    mounts: [],
  });
  test("insert refuses a taken name; records survive reopening", () => {
    const dir = join(tmp, "store");
    mkdirSync(dir);
    const s = new MachineStore(dir);
    expect(s.insert(rec("a"))).toBe(true);
    expect(s.insert(rec("a"))).toBe(false);
    s.put({ ...rec("a"), state: "stopped", stopReason: "crashed: exit code 1" });
    s.close();
    const again = new MachineStore(dir);
    expect(again.get("a")?.stopReason).toBe("crashed: exit code 1");
    expect(again.all().map((m) => m.name)).toEqual(["a"]);
    again.delete("a");
    expect(again.get("a")).toBeUndefined();
    again.close();
  });
});

describe("QMP client", () => {
  /** A scripted QMP server: greets, answers capabilities and query-status, emits events on request. */
  function fakeQmp(path: string) {
    let peer: Socket | undefined;
    const received: string[] = [];
    const server = createServer((s) => {
      peer = s;
      s.write(`${JSON.stringify({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "" }, capabilities: [] } })}\r\n`);
      let buf = "";
      s.on("data", (d) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const msg = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          received.push(msg.execute);
          if (msg.execute === "query-status") s.write(`${JSON.stringify({ return: { running: true, status: "running" }, id: msg.id })}\r\n`);
          else if (msg.execute === "bogus") s.write(`${JSON.stringify({ error: { class: "CommandNotFound", desc: "The command bogus has not been found" }, id: msg.id })}\r\n`);
          else s.write(`${JSON.stringify({ return: {}, id: msg.id })}\r\n`);
          if (msg.execute === "system_powerdown") {
            // An event and the end of the process, in one write as qemu may do it.
            s.end(`${JSON.stringify({ event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" }, timestamp: {} })}\r\n`);
          }
        }
      });
    });
    return new Promise<{ received: string[]; close: () => void; peer: () => Socket | undefined }>((r) => server.listen(path, () => r({ received, close: () => server.close(), peer: () => peer })));
  }

  test("negotiates, runs commands, reports errors and events, and signals the close", async () => {
    const path = join(tmp, "qmp.sock");
    const srv = await fakeQmp(path);
    const events: QmpEvent[] = [];
    const qmp = await QmpClient.connect(path, (e) => events.push(e));
    expect(qmp.version).toBe("7.2.22");
    expect(srv.received[0]).toBe("qmp_capabilities");
    expect(await qmp.queryStatus()).toEqual({ running: true, status: "running" });
    await expect(qmp.execute("bogus")).rejects.toThrow("CommandNotFound: The command bogus has not been found");
    await qmp.execute("system_powerdown");
    await qmp.closedSignal;
    expect(events).toEqual([{ event: "SHUTDOWN", data: { guest: true, reason: "guest-shutdown" } }]);
    expect(qmp.isOpen).toBe(false);
    await expect(qmp.execute("query-status")).rejects.toThrow("closed");
    srv.close();
  });

  test("a socket that never greets is an error, not a hang", async () => {
    const path = join(tmp, "mute.sock");
    const server = createServer(() => {});
    await new Promise<void>((r) => server.listen(path, () => r()));
    await expect(QmpClient.connect(path, () => {}, 300)).rejects.toThrow("no QMP greeting");
    server.close();
  });
});

test("logTail keeps the last lines after the last start marker", () => {
  const f = join(tmp, "qemu.log");
  writeFileSync(f, "=== start 1\nold error\n=== start 2\nargv\nqemu: line one\nqemu: line two\nqemu: fatal\n");
  expect(logTail(f, "=== start")).toBe("qemu: line one | qemu: line two | qemu: fatal");
});
