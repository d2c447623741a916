/**
 * VM mode's pure parts: how the daemon decides its engine mode, how vmm turns a
 * container request's host paths into the engine machine's, and the qemu devices of
 * its shares.
 */
import { describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ENGINE_MACHINE, engineMachine, resolveEngineMode } from "../../lib/engine-mode.ts";
import { CreateContainerRequestSchema } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { EnginePaths } from "../../services/vmm/core/engine-paths.ts";
import { qemuArgv } from "../../services/vmm/backend/qemu/qemu-argv.ts";

describe("engine mode", () => {
  const withHome = async (daemonJson: string | undefined, fn: (home: string) => Promise<void>) => {
    const home = mkdtempSync(join(tmpdir(), "arcbox-mode-"));
    try {
      if (daemonJson !== undefined) writeFileSync(join(home, "daemon.json"), daemonJson);
      await fn(home);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  };

  test("daemon.json's vm, overridden by ARCBOX_ENGINE_MODE", async () => {
    await withHome(undefined, async (h) => expect(await resolveEngineMode(h, {})).toBe("host"));
    await withHome('{"registry-mirrors": []}', async (h) => expect(await resolveEngineMode(h, {})).toBe("host"));
    await withHome('{"vm": true}', async (h) => expect(await resolveEngineMode(h, {})).toBe("vm"));
    await withHome('{"vm": false}', async (h) => expect(await resolveEngineMode(h, { ARCBOX_ENGINE_MODE: "vm" })).toBe("vm"));
    await withHome('{"vm": true}', async (h) => expect(await resolveEngineMode(h, { ARCBOX_ENGINE_MODE: "host" })).toBe("host"));
  });

  test("a malformed setting is refused, not read as host mode", async () => {
    await withHome('{"vm": "yes"}', async (h) => expect(resolveEngineMode(h, {})).rejects.toThrow(/"vm" must be true or false/));
    await withHome("{not json", async (h) => expect(resolveEngineMode(h, {})).rejects.toThrow(/daemon.json/));
    await withHome(undefined, async (h) => expect(resolveEngineMode(h, { ARCBOX_ENGINE_MODE: "kvm" })).rejects.toThrow(/must be "host" or "vm"/));
  });

  test("the machine that runs containers", () => {
    expect(engineMachine("host")).toBe("host");
    expect(engineMachine("vm")).toBe(ENGINE_MACHINE);
  });
});

describe("engine machine paths", () => {
  const home = "/h/home";
  const paths = new EnginePaths(home);
  const hex = "a".repeat(64);
  const request = (over: Record<string, unknown> = {}) =>
    create(CreateContainerRequestSchema, {
      machine: ENGINE_MACHINE,
      id: "c1",
      rootfs: {
        lowerDirs: [`${home}/data/imaged/mnt/${hex}`, `${home}/data/imaged/snapshots/${"b".repeat(64)}`],
        upperDir: `${home}/data/imaged/containers/c1/upper`,
        workDir: `${home}/data/imaged/containers/c1/work`,
      },
      logPath: `${home}/data/apid/containers/c1/c1-json.log`,
      hostsPath: `${home}/data/apid/containers/c1/hosts`,
      mounts: [{ destination: "/dev/shm", type: "tmpfs", source: "shm", options: [] }],
      ...over,
    } as never);

  test("layer images, unpacked layers, upper/work and apid's files", () => {
    const out = paths.translateCreate(request());
    expect(out.rootfs?.lowerDirs).toEqual([`/run/arcbox/imaged/layer-images/${hex}`, `/run/arcbox/imaged/snapshots/${"b".repeat(64)}`]);
    expect(out.rootfs?.upperDir).toBe("/var/lib/arcbox/data/vmm/host/rootfs/c1/upper");
    expect(out.rootfs?.workDir).toBe("/var/lib/arcbox/data/vmm/host/rootfs/c1/work");
    expect(out.logPath).toBe("/run/arcbox/apid-containers/c1/c1-json.log");
    expect(out.hostsPath).toBe("/run/arcbox/apid-containers/c1/hosts");
    expect(out.resolvConfPath).toBe("");
    expect(out.mounts).toEqual(request().mounts);
  });

  test("bind mounts and volumes reach the machine through the host root share", () => {
    const bind = (source: string) => request({ mounts: [{ destination: "/x", type: "bind", source, options: ["rbind"] }] });
    expect(paths.translateCreate(bind("/srv/data")).mounts[0]?.source).toBe("/run/arcbox/host/srv/data");
    // A lookalike of a specific share is not in it.
    expect(paths.translateCreate(bind(`${home}/data/imaged-other/x`)).mounts[0]?.source).toBe(`/run/arcbox/host${home}/data/imaged-other/x`);
    expect(paths.translateCreate(bind(`${home}/data/apid/containers/../../fsd/volumes/v/_data`)).mounts[0]?.source).toBe(`/run/arcbox/host${home}/data/fsd/volumes/v/_data`);
    expect(() => paths.translateCreate(bind("relative/dir"))).toThrow(/not a host path the engine machine can see/);
    // netd made the namespace in the machine, at the same path.
    expect(paths.translateCreate(request({ netnsPath: "/run/netns/x" })).netnsPath).toBe("/run/netns/x");
  });
});

test("qemu: VirtioFS shares get a shared memory backend and one device each", () => {
  const argv = qemuArgv(
    {
      name: "m",
      dir: "/d",
      cpus: 1,
      memoryMib: 512,
      rootDisk: "/d/disk.img",
      toolsDisk: "/t",
      kernel: "/k",
      initrd: "/i",
      cmdline: "x",
      shares: [
        { tag: "t1", socket: "/s/1.sock" },
        { tag: "t2", socket: "/s/2.sock" },
      ],
    },
    "tcg",
  );
  const s = argv.join(" ");
  expect(s).toContain("-object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem");
  expect(s).toContain("-chardev socket,id=fs0,path=/s/1.sock -device vhost-user-fs-device,chardev=fs0,tag=t1");
  expect(s).toContain("-chardev socket,id=fs1,path=/s/2.sock -device vhost-user-fs-device,chardev=fs1,tag=t2");
  expect(qemuArgv({ name: "m", dir: "/d", cpus: 1, memoryMib: 512, rootDisk: "/r", toolsDisk: "/t", kernel: "/k", initrd: "/i", cmdline: "x" }, "tcg", "q", false).join(" ")).not.toContain("memfd");
});
