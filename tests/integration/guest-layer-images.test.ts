/**
 * The guest agent's layer images (VM mode), on this host's kernel: a container root
 * over a squashfs layer image file, and the release of unused layer mounts that runs
 * after every container delete. A release landing while a create has mounted its
 * layer but not yet its overlay must leave the layer alone (after the engine machine
 * rebooted, the deletes of its dead containers took the layer of a new container
 * away: "mounting overlay ... No such file or directory"). Needs root, loop, squashfs.
 */
import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { RootfsSpecSchema } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { mountRootfs, releaseUnusedLayers } from "../../guest/platform/layer-images.ts";
import { run } from "../helpers/daemon.ts";

const work = mkdtempSync(join(tmpdir(), "arcbox-guest-layers-"));
const layersRoot = join(work, "layers");

const mountsUnder = (dir: string) =>
  readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m && m.startsWith(`${dir}/`));

afterAll(async () => {
  for (const m of mountsUnder(work).reverse()) await run(["umount", "-l", m]).catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

test("a release during a create keeps the create's layer; a release after the root went unmounts it", async () => {
  const src = join(work, "src");
  mkdirSync(src);
  writeFileSync(join(src, "hello.txt"), "from the layer\n");
  const image = join(work, "a".repeat(64));
  expect((await run(["mksquashfs", src, image, "-noappend", "-quiet", "-no-progress"])).code).toBe(0);

  const roots = Array.from({ length: 12 }, (_, i) => i).map((i) => {
    const dir = join(work, `c${i}`);
    mkdirSync(join(dir, "rootfs"), { recursive: true });
    return { target: join(dir, "rootfs"), spec: create(RootfsSpecSchema, { lowerDirs: [image], upperDir: join(dir, "upper"), workDir: join(dir, "work") }) };
  });
  // Creates and releases (other containers' deletes) interleaved, as after a reboot: at
  // once and spread over the creates (the old code lost the layer in most runs).
  await Promise.all(roots.flatMap((r, i) => [mountRootfs(r.spec, r.target, layersRoot), releaseUnusedLayers(layersRoot), Bun.sleep(i * 3).then(() => releaseUnusedLayers(layersRoot))]));
  for (const r of roots) expect(readFileSync(join(r.target, "hello.txt"), "utf8")).toBe("from the layer\n");
  expect(mountsUnder(layersRoot)).toEqual([join(layersRoot, "a".repeat(64))]);

  for (const r of roots) expect((await run(["umount", r.target])).code).toBe(0);
  // Unused, but its image is still there: kept for the next container of the image.
  expect(await releaseUnusedLayers(layersRoot)).toEqual([]);
  expect(mountsUnder(layersRoot)).toEqual([join(layersRoot, "a".repeat(64))]);
  expect(await releaseUnusedLayers(layersRoot, 0)).toEqual([join(layersRoot, "a".repeat(64))]);
  expect(mountsUnder(layersRoot)).toEqual([]);
}, 60_000);

test("an unused layer stays mounted until it has been idle long enough or its image file is gone", async () => {
  const src = join(work, "src2");
  mkdirSync(src);
  writeFileSync(join(src, "f"), "x\n");
  const images = ["b", "c"].map((ch) => join(work, ch.repeat(64)));
  for (const image of images) expect((await run(["mksquashfs", src, image, "-noappend", "-quiet", "-no-progress"])).code).toBe(0);
  const root = (i: number) => {
    const dir = join(work, `d${i}`);
    mkdirSync(join(dir, "rootfs"), { recursive: true });
    return { target: join(dir, "rootfs"), spec: create(RootfsSpecSchema, { lowerDirs: [images[i]!], upperDir: join(dir, "upper"), workDir: join(dir, "work") }) };
  };
  const [b, c] = [root(0), root(1)];
  await mountRootfs(b.spec, b.target, layersRoot);
  await mountRootfs(c.spec, c.target, layersRoot);
  for (const r of [b, c]) expect((await run(["umount", r.target])).code).toBe(0);
  const [lb, lc] = images.map((i) => join(layersRoot, i.split("/").at(-1)!));
  // b's image is removed (docker rmi): it goes at once; c's idles on a timer.
  rmSync(images[0]!);
  expect(await releaseUnusedLayers(layersRoot, 300)).toEqual([lb!]);
  expect(mountsUnder(layersRoot)).toEqual([lc!]);
  // Used again before the timer fires: the timer does not take it.
  await mountRootfs(c.spec, c.target, layersRoot);
  await Bun.sleep(500);
  expect(mountsUnder(layersRoot)).toEqual([lc!]);
  expect((await run(["umount", c.target])).code).toBe(0);
  expect(await releaseUnusedLayers(layersRoot, 300)).toEqual([]);
  for (let i = 0; i < 50 && mountsUnder(layersRoot).length; i++) await Bun.sleep(100);
  expect(mountsUnder(layersRoot)).toEqual([]);
}, 60_000);

test("a layer the host names as removed goes at once, though its image file still looks present", async () => {
  // Through the engine machine's share a removed file may stay visible for the name
  // cache's second: the host's list, not a stat, decides (docker rmi's ReleaseLayers).
  const src = join(work, "src-named");
  mkdirSync(src);
  writeFileSync(join(src, "f"), "x\n");
  const [named, other] = ["e", "f"].map((ch) => join(work, ch.repeat(64)));
  for (const image of [named!, other!]) expect((await run(["mksquashfs", src, image, "-noappend", "-quiet", "-no-progress"])).code).toBe(0);
  const roots = [named!, other!].map((image, i) => {
    const dir = join(work, `n${i}`);
    mkdirSync(join(dir, "rootfs"), { recursive: true });
    return { target: join(dir, "rootfs"), spec: create(RootfsSpecSchema, { lowerDirs: [image], upperDir: join(dir, "upper"), workDir: join(dir, "work") }) };
  });
  for (const r of roots) await mountRootfs(r.spec, r.target, layersRoot);
  for (const r of roots) expect((await run(["umount", r.target])).code).toBe(0);
  const [ln, lo] = [named!, other!].map((i) => join(layersRoot, i.split("/").at(-1)!));
  expect(await releaseUnusedLayers(layersRoot, undefined, new Set(["e".repeat(64), "0".repeat(64)]))).toEqual([ln!]);
  expect(mountsUnder(layersRoot)).toEqual([lo!]);
  expect(await releaseUnusedLayers(layersRoot, 0)).toEqual([lo!]);
}, 60_000);

test("the container's root is 0755 like its upper dir, so other users reach /bin; the container dir stays private", async () => {
  const src = join(work, "src-mode");
  mkdirSync(join(src, "bin"), { recursive: true });
  writeFileSync(join(src, "bin", "tool"), "x");
  const image = join(work, "b".repeat(64));
  expect((await run(["mksquashfs", src, image, "-noappend", "-quiet", "-no-progress"])).code).toBe(0);
  const dir = join(work, "mode", "c1");
  // The root's own path must be open to others for the check (mkdtemp's is 0700).
  const target = join(work, "mode-rootfs");
  mkdirSync(target, { recursive: true });
  chmodSync(work, 0o755);
  await mountRootfs(create(RootfsSpecSchema, { lowerDirs: [image], upperDir: join(dir, "fs", "upper"), workDir: join(dir, "fs", "work") }), target, layersRoot);
  try {
    expect(statSync(target).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, "fs")).mode & 0o777).toBe(0o700);
    // A non-root user lists /bin through the container's root.
    const ls = await run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "ls", join(target, "bin")]);
    expect(ls).toMatchObject({ code: 0, stdout: "tool\n" });
  } finally {
    await run(["umount", target]);
    await releaseUnusedLayers(layersRoot);
  }
}, 60_000);
