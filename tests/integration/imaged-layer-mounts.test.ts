/**
 * Layer images in imaged: a pull stores one squashfs file per layer and unpacks
 * nothing; container roots share one loop mount per layer, counted, unmounted (loop
 * device freed) after the last release; a restarted imaged adopts the mounts instead
 * of mounting twice; rmi + prune leaves nothing in /proc/mounts or `losetup`. A kernel
 * without squashfs falls back to unpacking and says so in `docker info`; such a store
 * (as one from before layer images) is converted to layer images when squashfs is
 * back, and keeps working through it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, pushImage, rawTar, type PushedImage } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let clients: ServiceClients;
let img: PushedImage;
let other: PushedImage;
const shared = rawTar([{ name: "shared.txt", data: "shared" }]);

beforeAll(async () => {
  reg = await startRegistry();
  img = await pushImage(reg, "mounts-a", "v1", { layers: [shared, rawTar([{ name: "a.txt", data: "a" }])] });
  other = await pushImage(reg, "mounts-b", "v1", { layers: [shared, rawTar([{ name: "b.txt", data: "b" }])] });
  daemon = new TestDaemon("arcbox-layer-mounts-");
  await daemon.start();
  clients = new ServiceClients(arcboxHome(daemon.home));
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await reg?.stop();
}, 60_000);

const dataDir = (d: TestDaemon) => join(d.home, "data", "imaged");

/** How many times each path is a mount point now, and with which filesystem type. */
function mountsOf(paths: string[]): { count: number; type: string }[] {
  const lines = readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((l) => l.split(" "));
  return paths.map((p) => {
    const hits = lines.filter((l) => l[1] === p);
    return { count: hits.length, type: hits[0]?.[2] ?? "" };
  });
}

async function loopDevicesFor(file: string): Promise<string> {
  return (await run(["losetup", "-j", file])).stdout.trim();
}

test("a pull writes one image file per layer and unpacks nothing; roots share one mount per layer", async () => {
  for (const ref of [img.reference, other.reference]) expect((await daemon.docker(["pull", "-q", ref])).code).toBe(0);
  expect(readdirSync(join(dataDir(daemon), "layer-images"))).toHaveLength(3);
  expect(readdirSync(join(dataDir(daemon), "snapshots"))).toEqual([]);

  const a1 = await clients.images.prepareRootfs({ image: img.reference, containerId: "a1" });
  const a2 = await clients.images.prepareRootfs({ image: img.reference, containerId: "a2" });
  const b1 = await clients.images.prepareRootfs({ image: other.reference, containerId: "b1" });
  expect(a2.lowerDirs).toEqual(a1.lowerDirs);
  for (const d of [...a1.lowerDirs, ...b1.lowerDirs]) expect(d.startsWith(`${join(dataDir(daemon), "mnt")}/`)).toBe(true);
  const all = [...new Set([...a1.lowerDirs, ...b1.lowerDirs])];
  expect(all).toHaveLength(3);
  expect(mountsOf(all)).toEqual(all.map(() => ({ count: 1, type: "squashfs" })));
  // A repeated prepare of the same container does not count it twice.
  await clients.images.prepareRootfs({ image: img.reference, containerId: "a1" });
  expect(readFileSync(join(a1.lowerDirs[1]!, "shared.txt"), "utf8")).toBe("shared");

  const [topA, sharedDir] = a1.lowerDirs as [string, string];
  const topB = b1.lowerDirs[0]!;
  await clients.images.releaseRootfs({ containerId: "a1" });
  expect(mountsOf([topA, sharedDir])).toEqual([
    { count: 1, type: "squashfs" },
    { count: 1, type: "squashfs" },
  ]);
  await clients.images.releaseRootfs({ containerId: "a2" });
  // a's own layer is unused now; the shared one still serves b1.
  expect(mountsOf([topA, sharedDir, topB]).map((m) => m.count)).toEqual([0, 1, 1]);
  expect(await loopDevicesFor(join(dataDir(daemon), "layer-images", topA.split("/").pop()!))).toBe("");
  await clients.images.releaseRootfs({ containerId: "b1" });
  expect(mountsOf(all).map((m) => m.count)).toEqual([0, 0, 0]);
});

test("a restarted imaged adopts mounted layers, never mounts twice, and still counts them", async () => {
  const c1 = await clients.images.prepareRootfs({ image: img.reference, containerId: "r1" });
  const { pid } = await clients.health("imaged").check({});
  process.kill(pid, "SIGKILL");
  // Wait (bounded) for the supervisor to see it die; the next call starts a fresh
  // imaged, which adopts what /proc/self/mounts shows.
  for (let i = 0; i < 100; i++) {
    const now = await clients
      .health("imaged")
      .check({})
      .catch(() => undefined);
    if (now && now.pid !== pid) break;
    await Bun.sleep(50);
  }
  const c2 = await clients.images.prepareRootfs({ image: img.reference, containerId: "r2" });
  expect((await clients.health("imaged").check({})).pid).not.toBe(pid);
  expect(mountsOf(c2.lowerDirs)).toEqual(c1.lowerDirs.map(() => ({ count: 1, type: "squashfs" })));
  await clients.images.releaseRootfs({ containerId: "r2" });
  expect(mountsOf(c1.lowerDirs).map((m) => m.count)).toEqual([1, 1]);
  await clients.images.releaseRootfs({ containerId: "r1" });
  expect(mountsOf(c1.lowerDirs).map((m) => m.count)).toEqual([0, 0]);
}, 60_000);

/** SIGKILLs imaged and waits (bounded) until a fresh one answers. */
async function restartImaged(): Promise<void> {
  const { pid } = await clients.health("imaged").check({});
  process.kill(pid, "SIGKILL");
  for (let i = 0; i < 100; i++) {
    const now = await clients
      .health("imaged")
      .check({})
      .catch(() => undefined);
    if (now && now.pid !== pid) return;
    await Bun.sleep(50);
  }
  throw new Error("imaged did not come back");
}

test("a layer image that no longer mounts does not keep imaged from starting", async () => {
  const c = await clients.images.prepareRootfs({ image: img.reference, containerId: "broken" });
  const top = c.lowerDirs[0]!;
  expect((await run(["umount", top])).code).toBe(0);
  writeFileSync(join(dataDir(daemon), "layer-images", top.split("/").pop()!), "not a squashfs image");
  await restartImaged();
  const images = await daemon.docker(["images", "-q"]);
  expect(images.code).toBe(0);
  expect(images.stdout.trim()).not.toBe("");
  await clients.images.releaseRootfs({ containerId: "broken" });
  expect(mountsOf(c.lowerDirs).map((m) => m.count)).toEqual([0, 0]);
}, 60_000);

test("rmi and prune leave no layer file, mount or loop device", async () => {
  const images = readdirSync(join(dataDir(daemon), "layer-images")).map((n) => join(dataDir(daemon), "layer-images", n));
  expect((await daemon.docker(["rmi", img.reference, other.reference])).code).toBe(0);
  expect((await daemon.docker(["image", "prune", "-a", "-f"])).code).toBe(0);
  expect(readdirSync(join(dataDir(daemon), "layer-images"))).toEqual([]);
  expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(dataDir(daemon));
  for (const f of images) expect(await loopDevicesFor(f)).toBe("");
});

test("without squashfs layers are unpacked and docker info says so; that store keeps working with squashfs", async () => {
  const fakeFs = join(daemon.home, "filesystems-without-squashfs");
  writeFileSync(fakeFs, "nodev\tproc\nnodev\toverlay\n\text4\n");
  const old = new TestDaemon("arcbox-layer-fallback-", { ARCBOX_PROC_FILESYSTEMS: fakeFs });
  try {
    await old.start();
    const bb = await pushBusybox(reg, "mounts-busybox");
    expect((await old.docker(["pull", "-q", bb.reference])).code).toBe(0);
    expect(readdirSync(join(dataDir(old), "layer-images"))).toEqual([]);
    expect(readdirSync(join(dataDir(old), "snapshots"))).toHaveLength(1);
    const info = JSON.parse((await old.docker(["info", "--format", "{{json .DriverStatus}}"])).stdout) as string[][];
    expect(info).toContainEqual(["Layer Format", "unpacked directories (kernel has no squashfs)"]);
    const r1 = await old.docker(["run", "--rm", bb.reference, "echo", "unpacked"]);
    expect(r1.stdout.trim()).toBe("unpacked");
    // A container made before the change keeps its root on the unpacked directory.
    expect((await old.docker(["create", "--name", "keep", bb.reference, "echo", "kept"])).code).toBe(0);
    await old.stop();

    // The same home with squashfs: the unpacked layer becomes an image at start; its
    // directory stays while the old container's root uses it, and goes with that root.
    const again = new TestDaemon("unused-", {});
    Object.assign(again, { home: old.home });
    await again.start();
    const info2 = JSON.parse((await again.docker(["info", "--format", "{{json .DriverStatus}}"])).stdout) as string[][];
    expect(info2).toContainEqual(["Layer Format", "squashfs images (loop-mounted)"]);
    const images = () => readdirSync(join(dataDir(old), "layer-images")).filter((n) => !n.startsWith("tmp-"));
    await waitFor("the old layer converted", async () => images().length === 1, 60_000);
    expect(readdirSync(join(dataDir(old), "snapshots"))).toHaveLength(1);
    const r3 = await again.docker(["run", "--rm", bb.reference, "echo", "still runs"]);
    expect(r3.stdout.trim()).toBe("still runs");
    expect((await again.docker(["start", "-a", "keep"])).stdout.trim()).toBe("kept");
    expect((await again.docker(["rm", "keep"])).code).toBe(0);
    expect(readdirSync(join(dataDir(old), "snapshots"))).toEqual([]);
    expect((await again.docker(["run", "--rm", bb.reference, "echo", "from the image"])).stdout.trim()).toBe("from the image");
    const extra = await pushImage(reg, "mounts-extra", "v1", { layers: [rawTar([{ name: "x.txt", data: "x" }])] });
    expect((await again.docker(["pull", "-q", extra.reference])).code).toBe(0);
    expect(images()).toHaveLength(2);
    await again.stop();
  } finally {
    await old.dispose();
  }
}, 120_000);

test("no free loop device: the run fails with that message and leaves no container, root or mount", async () => {
  // A `mount` that fails loop mounts as util-linux does when every loop device is
  // taken (exhausting the real ones would hit every other user of this host).
  const bin = join(daemon.home, "fake-bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "mount"), '#!/bin/sh\ncase "$*" in *squashfs*) echo "mount: $6: failed to setup loop device for $5." >&2; exit 32;; esac\nexec /bin/mount "$@"\n', { mode: 0o755 });
  const full = new TestDaemon("arcbox-layer-noloop-", { PATH: `${bin}:${process.env.PATH}` });
  try {
    await full.start();
    const bb = await pushBusybox(reg, "noloop-busybox");
    expect((await full.docker(["pull", "-q", bb.reference])).code).toBe(0);
    const r = await full.docker(["run", "--rm", bb.reference, "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("no free loop device");
    expect((await full.docker(["ps", "-aq"])).stdout.trim()).toBe("");
    expect(readdirSync(join(dataDir(full), "containers"))).toEqual([]);
    expect(readFileSync("/proc/self/mounts", "utf8")).not.toContain(dataDir(full));
  } finally {
    await full.dispose();
  }
}, 120_000);
