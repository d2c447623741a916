/**
 * docker save / load / import through the real CLI: archives round-trip with IDs,
 * tags and layers intact; bad archives are refused without leaving anything behind.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, pushImage, rawTar, tarFiles, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let busybox: PushedImage;
let two: PushedImage;
const work = mkdtempSync(join(tmpdir(), "arcbox-archive-"));

beforeAll(async () => {
  reg = await startRegistry();
  busybox = await pushBusybox(reg);
  two = await pushImage(reg, "two", "v1", { layers: [tarFiles({ "one.txt": "1" }), tarFiles({ "two.txt": "2" })], format: "oci", compression: "zstd" });
  daemon = new TestDaemon("arcbox-images-archive-");
  await daemon.start();
  for (const ref of [busybox.reference, two.reference]) {
    const r = await daemon.docker(["pull", "-q", ref]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

const imageDir = () => join(daemon.home, "data", "imaged");

test("docker save writes a docker-archive with manifest.json, repositories and an OCI layout", async () => {
  const out = join(work, "both.tar");
  const r = await daemon.docker(["save", "-o", out, busybox.reference, two.reference]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  const list = await run(["tar", "-tf", out]);
  const names = list.stdout.trim().split("\n");
  for (const n of ["manifest.json", "repositories", "index.json", "oci-layout", `blobs/sha256/${busybox.configDigest.slice(7)}`]) expect(names).toContain(n);
  const manifest = JSON.parse((await run(["tar", "-xOf", out, "manifest.json"])).stdout);
  expect(manifest).toHaveLength(2);
  expect(manifest.map((m: { RepoTags: string[] }) => m.RepoTags[0]).sort()).toEqual([busybox.reference, two.reference].sort());
});

test("docker load restores removed images with the same IDs and tags", async () => {
  const out = join(work, "both.tar");
  expect((await daemon.docker(["rmi", busybox.reference, two.reference])).code).toBe(0);
  expect(readdirSync(join(imageDir(), "layer-images"))).toEqual([]);
  const r = await daemon.docker(["load", "-i", out]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`Loaded image: ${busybox.reference}`);
  expect(r.stdout).toContain(`Loaded image: ${two.reference}`);
  const ids = await daemon.docker(["image", "inspect", "--format", "{{.Id}} {{len .RootFS.Layers}}", busybox.reference, two.reference]);
  expect(ids.stdout.trim().split("\n")).toEqual([`${busybox.configDigest} 1`, `${two.configDigest} 2`]);
  expect(readdirSync(join(imageDir(), "layer-images"))).toHaveLength(3);
  // A loaded image can be pushed again with its original digest.
  const push = await daemon.docker(["push", two.reference]);
  expect(push.code).toBe(0);
  expect(push.stdout).toContain(`v1: digest: ${two.manifestDigest}`);
});

test("docker save to stdout by ID, then load from stdin: untagged image by ID", async () => {
  const out = join(work, "byid.tar");
  const save = await run(["sh", "-c", `docker -H ${daemon.dockerHost} save ${two.configDigest.slice(7, 19)} > ${out}`]);
  expect(save.code).toBe(0);
  expect((await daemon.docker(["rmi", two.reference])).code).toBe(0);
  const load = await run(["sh", "-c", `docker -H ${daemon.dockerHost} load -q < ${out}`]);
  expect(load.stderr).toBe("");
  expect(load.stdout.trim()).toBe(`Loaded image ID: ${two.configDigest}`);
});

test("docker load of garbage or of an archive with a tampered layer fails and stores nothing", async () => {
  const garbage = join(work, "garbage.tar");
  writeFileSync(garbage, "this is not a tar file at all".repeat(100));
  const r = await daemon.docker(["load", "-i", garbage]);
  expect(r.code).toBe(1);
  const layer = rawTar([{ name: "x.txt", data: "x" }]);
  const cfg = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${"0".repeat(64)}`] } });
  const bad = join(work, "tampered");
  rmSync(bad, { recursive: true, force: true });
  require("node:fs").mkdirSync(join(bad, "l"), { recursive: true });
  writeFileSync(join(bad, "l", "layer.tar"), layer);
  writeFileSync(join(bad, "c.json"), cfg);
  writeFileSync(join(bad, "manifest.json"), JSON.stringify([{ Config: "c.json", RepoTags: ["tampered:1"], Layers: ["l/layer.tar"] }]));
  await run(["tar", "-C", bad, "-cf", join(work, "tampered.tar"), "."]);
  const before = readdirSync(join(imageDir(), "blobs", "sha256")).sort();
  const t = await daemon.docker(["load", "-i", join(work, "tampered.tar")]);
  expect(t.code).toBe(1);
  expect(t.stderr + t.stdout).toContain("does not match the config's diff ID");
  expect((await daemon.docker(["image", "inspect", "tampered:1"])).code).toBe(1);
  expect(readdirSync(join(imageDir(), "blobs", "sha256")).sort()).toEqual(before);
  expect(readdirSync(join(imageDir(), "snapshots-tmp"))).toEqual([]);
});

test("docker import creates a one-layer image with --change and --message", async () => {
  const tarball = join(work, "rootfs.tar.gz");
  writeFileSync(tarball, Bun.gzipSync(tarFiles({ "hello.txt": "imported", "bin/tool": { content: "#!/bin/sh\n", mode: 0o755 } }) as Uint8Array<ArrayBuffer>));
  const r = await run(["sh", "-c", `docker -H ${daemon.dockerHost} import --change 'CMD ["/bin/tool"]' --change 'ENV A=1 B=two' --change 'LABEL x=y' -m "from a test" - imported:1 < ${tarball}`]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout.trim()).toMatch(/^sha256:[a-f0-9]{64}$/);
  const info = JSON.parse((await daemon.docker(["image", "inspect", "imported:1"])).stdout)[0];
  expect(info.Id).toBe(r.stdout.trim());
  expect(info.Config.Cmd).toEqual(["/bin/tool"]);
  expect(info.Config.Env).toEqual(["A=1", "B=two"]);
  expect(info.Config.Labels).toEqual({ x: "y" });
  expect(info.Comment).toBe("from a test");
  expect(info.RootFS.Layers).toHaveLength(1);
  const bad = await run(["sh", "-c", `docker -H ${daemon.dockerHost} import --change 'FROB x' - imported:2 < ${tarball}`]);
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("FROB is not a valid change command");
});
