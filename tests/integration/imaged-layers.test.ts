/**
 * Multi-layer images with whiteouts and opaque directories, pulled with gzip, zstd
 * and uncompressed layers, checked through a real overlayfs mount of PrepareRootfs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushImage, rawTar, type ImageSpec } from "../helpers/test-images.ts";
import { waitFor } from "../helpers/wait.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let clients: ServiceClients;
const mounts: string[] = [];

const layers = [
  rawTar([
    { name: "etc/", type: "5" },
    { name: "etc/motd", data: "hello" },
    { name: "etc/keep", data: "kept" },
    { name: "var/cache/", type: "5" },
    { name: "var/cache/a", data: "a" },
    { name: "var/cache/b", data: "b" },
    { name: "opt/data", data: "0".repeat(100_000) },
  ]),
  rawTar([
    { name: "etc/.wh.motd" },
    { name: "var/cache/", type: "5" },
    { name: "var/cache/.wh..wh..opq" },
    { name: "var/cache/c", data: "c" },
    { name: "opt/data-copy", data: "copy" },
    { name: "opt/data-link", type: "1", linkname: "opt/data-copy" },
    { name: "dev/zero", type: "3", devmajor: 1, devminor: 5, mode: 0o666 },
  ]),
  rawTar([{ name: "etc/motd2", data: "second", mode: 0o600, uid: 42, gid: 43 }]),
];

beforeAll(async () => {
  reg = await startRegistry();
  daemon = new TestDaemon("arcbox-imaged-layers-");
  await daemon.start();
  clients = new ServiceClients(arcboxHome(daemon.home));
}, 120_000);

afterAll(async () => {
  for (const m of mounts) {
    await run(["umount", m]);
    rmSync(m, { recursive: true, force: true });
  }
  await daemon?.dispose();
  await reg?.stop();
}, 60_000);

async function mountImage(ref: string, containerId: string, via: ServiceClients = clients): Promise<string> {
  const res = await via.images.prepareRootfs({ image: ref, containerId });
  expect(res.lowerDirs).toHaveLength(3);
  const merged = mkdtempSync(join(tmpdir(), "arcbox-merged-"));
  const m = await run(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${res.lowerDirs.join(":")},upperdir=${res.upperDir},workdir=${res.workDir}`, merged]);
  expect(m.stderr).toBe("");
  mounts.push(merged);
  return merged;
}

for (const [name, spec] of [
  ["gzip", { format: "docker", compression: "gzip" }],
  ["zstd", { format: "oci", compression: "zstd" }],
  ["uncompressed", { format: "oci", compression: "none" }],
] as [string, Partial<ImageSpec>][]) {
  test(`${name} layers: whiteouts hide, opaque dirs reset, links and devices survive`, async () => {
    const img = await pushImage(reg, `layers-${name}`, "v1", { layers, ...spec });
    const pull = await daemon.docker(["pull", img.reference]);
    expect(pull.stderr).toBe("");
    expect(pull.code).toBe(0);
    expectLayersContent(await mountImage(img.reference, `layers-${name}`));
  });
}

function expectLayersContent(root: string): void {
  expect(existsSync(join(root, "etc/motd"))).toBe(false);
  expect(readFileSync(join(root, "etc/keep"), "utf8")).toBe("kept");
  expect(readdirSync(join(root, "var/cache"))).toEqual(["c"]);
  expect(readFileSync(join(root, "opt/data"), "utf8")).toHaveLength(100_000);
  expect(statSync(join(root, "opt/data-link")).ino).toBe(statSync(join(root, "opt/data-copy")).ino);
  expect(statSync(join(root, "dev/zero")).rdev).toBe(0x105);
  const motd2 = statSync(join(root, "etc/motd2"));
  expect([motd2.mode & 0o777, motd2.uid, motd2.gid]).toEqual([0o600, 42, 43]);
}

test("a store from before layer images is converted at start: same content, directories gone", async () => {
  const img = await pushImage(reg, "layers-convert", "v1", { layers });
  // The same home first without squashfs (as before layer images), then with it.
  const fakeFs = join(daemon.home, "filesystems-without-squashfs-convert");
  writeFileSync(fakeFs, "nodev\tproc\nnodev\toverlay\n\text4\n");
  const old = new TestDaemon("arcbox-layers-convert-", { ARCBOX_PROC_FILESYSTEMS: fakeFs });
  const data = join(old.home, "data", "imaged");
  try {
    await old.start();
    expect((await old.docker(["pull", "-q", img.reference])).code).toBe(0);
    expect(readdirSync(join(data, "snapshots"))).toHaveLength(3);
    expect(readdirSync(join(data, "layer-images"))).toEqual([]);
    await old.stop();

    const again = new TestDaemon("unused-", {});
    Object.assign(again, { home: old.home });
    await again.start();
    const via = new ServiceClients(arcboxHome(again.home));
    // Any call starts imaged, which converts in the background.
    expect((await again.docker(["image", "inspect", img.reference])).code).toBe(0);
    await waitFor(
      "the three layers converted",
      async () => readdirSync(join(data, "layer-images")).filter((n) => !n.startsWith("tmp-")).length === 3 && readdirSync(join(data, "snapshots")).length === 0,
      60_000,
    );
    const merged = await mountImage(img.reference, "layers-converted", via);
    expectLayersContent(merged);
    // The lower dirs are the images' mounts now, not the old directories.
    expect(readFileSync("/proc/self/mounts", "utf8")).toContain(join(data, "mnt"));
    const popped = mounts.pop()!;
    expect((await run(["umount", popped])).code).toBe(0);
    rmSync(popped, { recursive: true, force: true });
    await via.images.releaseRootfs({ containerId: "layers-converted" });
    await again.stop();
  } finally {
    await old.dispose();
  }
}, 180_000);

test("an image with 80 layers mounts, using the short relative lower dirs", async () => {
  const many = Array.from({ length: 80 }, (_, i) => rawTar([{ name: `layer-${i}.txt`, data: String(i) }]));
  const img = await pushImage(reg, "many-layers", "v1", { layers: many });
  expect((await daemon.docker(["pull", "-q", img.reference])).code).toBe(0);
  const res = await clients.images.prepareRootfs({ image: img.reference, containerId: "many-layers" });
  expect(res.lowerDirs).toHaveLength(80);
  expect(res.relativeLowerDirs).toHaveLength(80);
  const options = `lowerdir=${res.relativeLowerDirs.join(":")},upperdir=${res.upperDir},workdir=${res.workDir}`;
  expect(options.length).toBeLessThan(4000);
  const merged = mkdtempSync(join(tmpdir(), "arcbox-merged-"));
  const m = Bun.spawnSync(["mount", "-t", "overlay", "overlay", "-o", options, merged], { cwd: res.layersBase, stderr: "pipe" });
  expect(m.stderr.toString()).toBe("");
  mounts.push(merged);
  expect(readFileSync(join(merged, "layer-0.txt"), "utf8")).toBe("0");
  expect(readFileSync(join(merged, "layer-79.txt"), "utf8")).toBe("79");
});
