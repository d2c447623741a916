/**
 * Multi-layer images with whiteouts and opaque directories, pulled with gzip, zstd
 * and uncompressed layers, checked through a real overlayfs mount of PrepareRootfs.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushImage, rawTar, type ImageSpec } from "../helpers/test-images.ts";

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

async function mountImage(ref: string, containerId: string): Promise<string> {
  const res = await clients.images.prepareRootfs({ image: ref, containerId });
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
    const root = await mountImage(img.reference, `layers-${name}`);
    expect(existsSync(join(root, "etc/motd"))).toBe(false);
    expect(readFileSync(join(root, "etc/keep"), "utf8")).toBe("kept");
    expect(readdirSync(join(root, "var/cache"))).toEqual(["c"]);
    expect(readFileSync(join(root, "opt/data"), "utf8")).toHaveLength(100_000);
    expect(statSync(join(root, "opt/data-link")).ino).toBe(statSync(join(root, "opt/data-copy")).ino);
    expect(statSync(join(root, "dev/zero")).rdev).toBe(0x105);
    const motd2 = statSync(join(root, "etc/motd2"));
    expect([motd2.mode & 0o777, motd2.uid, motd2.gid]).toEqual([0o600, 42, 43]);
  });
}

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
