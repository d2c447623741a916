/**
 * Archives cross between ArcBox and Docker Engine (Debian's dockerd 20.10, started
 * on its own data root): `docker save` from ArcBox loads into Docker, and back.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDockerd, type DockerEngine } from "../../bench/lib/dockerd.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushImage, tarFiles, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let engine: DockerEngine;
let img: PushedImage;
const work = mkdtempSync(join(tmpdir(), "arcbox-interop-"));

beforeAll(async () => {
  reg = await startRegistry();
  img = await pushImage(reg, "interop", "v1", { layers: [tarFiles({ "a.txt": "a" }), tarFiles({ "b/c.txt": "c" })], config: { Labels: { from: "arcbox" } } });
  daemon = new TestDaemon("arcbox-images-interop-");
  [, engine] = await Promise.all([daemon.start(), startDockerd()]);
  const pull = await daemon.docker(["pull", "-q", img.reference]);
  if (pull.code !== 0) throw new Error(pull.stderr);
}, 120_000);

afterAll(async () => {
  await engine?.stop();
  await daemon?.dispose();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

const inspectId = async (host: string, ref: string) => (await run(["docker", "-H", host, "image", "inspect", "--format", "{{.Id}}", ref])).stdout.trim();

test("an ArcBox docker save loads into Docker Engine with the same image ID", async () => {
  const out = join(work, "from-arcbox.tar");
  expect((await daemon.docker(["save", "-o", out, img.reference])).code).toBe(0);
  const load = await run(["docker", "-H", engine.host, "load", "-i", out]);
  expect(load.stderr).toBe("");
  expect(load.stdout).toContain(`Loaded image: ${img.reference}`);
  expect(await inspectId(engine.host, img.reference)).toBe(img.configDigest);
});

test("a Docker Engine docker save loads into ArcBox with the same image ID", async () => {
  const out = join(work, "from-docker.tar");
  expect((await run(["docker", "-H", engine.host, "tag", img.reference, "roundtrip:2"])).code).toBe(0);
  expect((await run(["docker", "-H", engine.host, "save", "-o", out, "roundtrip:2"])).code).toBe(0);
  const load = await daemon.docker(["load", "-i", out]);
  expect(load.stderr).toBe("");
  expect(load.stdout).toContain("Loaded image: roundtrip:2");
  expect(await inspectId(daemon.dockerHost, "roundtrip:2")).toBe(img.configDigest);
});
