/**
 * A machine's mounts without a VM: the HOSTDIR:GUESTDIR[:ro][,cache=] notation, the
 * checks that keep bad input out of a record, tags, the kernel argument the guest reads
 * (decoded by the guest's own busybox script), qemu's vhost-user-fs argv and the
 * migration of records made before mounts existed.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mountsArg } from "../../guest/boot/mounts-arg.ts";
import { REPO_ROOT } from "../../lib/entry.ts";
import { kernelCmdline } from "../../guest/boot/contract.ts";
import { qemuArgv } from "../../services/vmm/backend/qemu/qemu-argv.ts";
import { addMounts, formatMount, parseMountSpec } from "../../services/vmm/core/machine-mounts.ts";
import { MachineStore } from "../../services/vmm/storage/machine-store.ts";
import { homeMount, mountFromSpec } from "../../cli/commands/machine-mounts.ts";

const tmp = mkdtempSync(join(tmpdir(), "arcbox-mounts-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const src = join(tmp, "src");
mkdirSync(src);
writeFileSync(join(tmp, "file"), "");

describe("mount notation", () => {
  test("HOSTDIR:GUESTDIR with ro, rw and cache options", () => {
    expect(parseMountSpec("/a:/b")).toEqual({ hostDir: "/a", guestDir: "/b" });
    expect(parseMountSpec("/a:/b:ro")).toEqual({ hostDir: "/a", guestDir: "/b", readOnly: true });
    expect(parseMountSpec("/a:/b:ro,cache=never")).toEqual({ hostDir: "/a", guestDir: "/b", readOnly: true, cacheMode: "never" });
    expect(parseMountSpec("/a:/b:cache=always")).toEqual({ hostDir: "/a", guestDir: "/b", cacheMode: "always" });
    expect(formatMount({ hostDir: "/a", guestDir: "/b", readOnly: true, cacheMode: "never" })).toBe("/a:/b:ro,cache=never");
    expect(formatMount({ hostDir: "/a", guestDir: "/b", readOnly: false, cacheMode: "auto" })).toBe("/a:/b");
  });
  test("malformed specs are refused with the expected form", () => {
    expect(() => parseMountSpec("/a")).toThrow("expected HOSTDIR:GUESTDIR");
    expect(() => parseMountSpec(":/b")).toThrow("expected HOSTDIR:GUESTDIR");
    expect(() => parseMountSpec("/a:/b:ro:x")).toThrow("expected HOSTDIR:GUESTDIR");
    expect(() => parseMountSpec("/a:/b:rx")).toThrow("invalid mount option 'rx'");
    expect(() => parseMountSpec("/a:/b:cache=sometimes")).toThrow("unknown cache mode 'sometimes'");
  });
});

describe("mount checks", () => {
  test("tags are the lowest free s<N>; paths are normalised", () => {
    const one = addMounts([], [{ hostDir: `${src}/`, guestDir: "/work//src/" }]);
    expect(one).toEqual([{ tag: "s0", hostDir: src, guestDir: "/work/src", readOnly: false, cacheMode: "auto" }]);
    const two = addMounts(one, [{ hostDir: src, guestDir: "/other", readOnly: true, cacheMode: "never" }]);
    expect(two.map((m) => m.tag)).toEqual(["s0", "s1"]);
    expect(addMounts(two.slice(1), [{ hostDir: src, guestDir: "/third" }]).map((m) => m.tag)).toEqual(["s1", "s0"]);
  });
  test("bad input is refused before anything changes", () => {
    expect(() => addMounts([], [{ hostDir: join(tmp, "missing"), guestDir: "/x" }])).toThrow(`host directory '${join(tmp, "missing")}' does not exist`);
    expect(() => addMounts([], [{ hostDir: join(tmp, "file"), guestDir: "/x" }])).toThrow("is not a directory");
    expect(() => addMounts([], [{ hostDir: "rel/dir", guestDir: "/x" }])).toThrow("host directory 'rel/dir' is not absolute");
    expect(() => addMounts([], [{ hostDir: src, guestDir: "x/y" }])).toThrow("guest directory 'x/y' is not absolute");
    expect(() => addMounts([], [{ hostDir: src, guestDir: "/a/../b" }])).toThrow("contains '..'");
    expect(() => addMounts([], [{ hostDir: src, guestDir: "/" }])).toThrow("root directory");
    expect(() => addMounts([], [{ hostDir: src, guestDir: "/proc/x" }])).toThrow("inside /proc");
    expect(() => addMounts([], [{ hostDir: src, guestDir: "/opt/arcbox" }])).toThrow("inside /opt/arcbox");
    expect(() =>
      addMounts(
        [],
        [
          { hostDir: src, guestDir: "/x" },
          { hostDir: src, guestDir: "/x/" },
        ],
      ),
    ).toThrow("guest directory '/x' is already a mount");
    expect(() => addMounts([], [{ hostDir: src, guestDir: "/x", cacheMode: "bogus" }])).toThrow("unknown cache mode");
    const many = Array.from({ length: 17 }, (_, i) => ({ hostDir: src, guestDir: `/m${i}` }));
    expect(() => addMounts([], many)).toThrow("at most 16 mounts");
    expect(() => addMounts([], [{ hostDir: src, guestDir: `/${"d".repeat(1600)}` }])).toThrow("too long");
  });
});

describe("CLI: home share and relative host dirs", () => {
  test("$HOME at the same path unless it cannot be; an explicit mount there wins", () => {
    expect(homeMount(src, [])).toEqual({ mount: { hostDir: src, guestDir: src, readOnly: false, cacheMode: "" } });
    expect(homeMount(`${src}/`, [])).toEqual({ mount: { hostDir: src, guestDir: src, readOnly: false, cacheMode: "" } });
    expect(homeMount(undefined, []).note).toBe("not sharing a home directory: $HOME is not set");
    expect(homeMount("/", []).note).toBe("not sharing the home directory: $HOME is /");
    expect(homeMount("rel", []).note).toContain("is not absolute");
    expect(homeMount(join(tmp, "gone"), []).note).toContain("does not exist");
    expect(homeMount("/proc", []).note).toContain("inside /proc");
    expect(homeMount(src, [`${src}/`])).toEqual({});
  });
  test("a relative HOSTDIR is taken from the working directory", () => {
    expect(mountFromSpec("src:/w:ro", tmp)).toEqual({ hostDir: src, guestDir: "/w", readOnly: true, cacheMode: "" });
    expect(mountFromSpec("../x/./y:/w", "/a/b")).toEqual({ hostDir: "/a/x/y", guestDir: "/w", readOnly: false, cacheMode: "" });
  });
});

describe("kernel argument", () => {
  const dirs = ["/plain", "/with space/and,comma:colon", "/ünï%code"];
  test("encodes unusual bytes; the guest's PID 1 decodes them back", () => {
    const arg = mountsArg(dirs.map((d, i) => ({ tag: `s${i}`, guestDir: d, readOnly: i === 1 })))!;
    expect(arg).toBe("arcbox.mounts=s0:/plain,s1:/with%20space/and%2Ccomma%3Acolon:ro,s2:/%C3%BCn%C3%AF%25code");
    expect(arg).not.toContain(" ");
    expect(mountsArg([])).toBeUndefined();
    expect(kernelCmdline({ machineName: "m", mounts: [{ tag: "s0", guestDir: "/a", readOnly: false }] })).toContain(" arcbox.name=m arcbox.mounts=s0:/a");
    expect(kernelCmdline({ machineName: "m" })).not.toContain("arcbox.mounts");
    // The guest's decoding (native/init/machine-setup.c), as PID 1 does it at boot.
    const decode = Bun.spawnSync([join(REPO_ROOT, "native", "bin", "arcbox-init"), "--print-shares", `quiet ${arg} arcbox.name=m`]);
    expect(new TextDecoder().decode(decode.stdout).trim().split("\n")).toEqual(["s0|/plain|", "s1|/with space/and,comma:colon|ro", "s2|/ünï%code|"]);
  });
});

describe("qemu argv with shares", () => {
  const spec = { name: "dev", dir: "/m/dev", cpus: 1, memoryMib: 512, rootDisk: "/m/d.img", toolsDisk: "/g/t.img", kernel: "/g/k", initrd: "/g/i", cmdline: "quiet" };
  test("shared memfd RAM, modern virtio-mmio and one vhost-user-fs device per share", () => {
    const s = qemuArgv(
      {
        ...spec,
        shares: [
          { tag: "s0", socket: "/r/dev.s0.sock" },
          { tag: "s1", socket: "/r/a,b.sock" },
        ],
      },
      "tcg",
      "q",
    ).join(" ");
    expect(s).toContain("-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem");
    expect(s).toContain("-global virtio-mmio.force-legacy=false");
    expect(s).toContain("-chardev socket,id=fs0,path=/r/dev.s0.sock -device vhost-user-fs-device,chardev=fs0,tag=s0");
    expect(s).toContain("-chardev socket,id=fs1,path=/r/a,,b.sock -device vhost-user-fs-device,chardev=fs1,tag=s1");
    expect(s).toContain("virtio-balloon-device,free-page-reporting=on");
  });
  test("without shares on Linux: memfd RAM reported at 4 KiB, no vhost-user", () => {
    const argv = qemuArgv(spec, "tcg", "q", true);
    const s = argv.join(" ");
    expect(s).toContain("-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem");
    expect(argv[argv.indexOf("-append") + 1]).toBe("quiet arcbox.accel=tcg page_reporting.page_reporting_order=0");
    expect(s).not.toContain("force-legacy");
    expect(s).not.toContain("vhost-user");
  });
  test("without memfd (macOS): anonymous RAM, the kernel's 2 MiB reporting order", () => {
    const argv = qemuArgv(spec, "hvf", "q", false);
    expect(argv.join(" ")).not.toContain("memory-backend");
    expect(argv[argv.indexOf("-append") + 1]).toBe("quiet arcbox.accel=hvf");
  });
});

describe("machine store migration", () => {
  test("a v1 record (before mounts) reads back with no mounts and is rewritten", () => {
    const dir = join(tmp, "v1");
    mkdirSync(dir);
    const db = new Database(join(dir, "machines.db"), { create: true });
    const old = {
      name: "old",
      image: "busybox",
      imageId: "sha256:x",
      cpus: 1,
      memoryMib: 256,
      diskGib: 1,
      state: "stopped",
      backend: "qemu",
      accel: "tcg",
      accelNote: "",
      pid: 0,
      mac: "",
      ip: "",
      createdMs: 1,
      startedMs: 2,
      stoppedMs: 3,
      stopReason: "poweroff",
    };
    db.exec("CREATE TABLE machines (name TEXT PRIMARY KEY, doc TEXT NOT NULL); PRAGMA user_version = 1;");
    db.query("INSERT INTO machines (name, doc) VALUES (?, ?)").run("old", JSON.stringify(old));
    db.close();
    const s = new MachineStore(dir);
    expect(s.get("old")).toEqual({ ...old, state: "stopped", mounts: [] });
    s.close();
    const raw = new Database(join(dir, "machines.db"));
    expect(JSON.parse((raw.query("SELECT doc FROM machines").get() as { doc: string }).doc).mounts).toEqual([]);
    expect((raw.query("PRAGMA user_version").get() as { user_version: number }).user_version).toBe(2);
    raw.close();
  });
});
