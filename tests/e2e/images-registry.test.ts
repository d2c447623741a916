/**
 * Registry features: manifest lists / OCI indexes with platform selection, and
 * registry mirrors from $ARCBOX_HOME/daemon.json.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, startRegistryProxy, type RegistryProxy, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, pushIndex, tarFiles, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let mirror: TestRegistry;
let mirrorProxy: RegistryProxy;
let daemon: TestDaemon;
let multi: Awaited<ReturnType<typeof pushIndex>>;
let hub: PushedImage;

beforeAll(async () => {
  [reg, mirror] = await Promise.all([startRegistry(), startRegistry()]);
  mirrorProxy = await startRegistryProxy(mirror);
  multi = await pushIndex(reg, "multi", "v1", [
    { platform: { os: "linux", architecture: "amd64" }, spec: { layers: [tarFiles({ "arch.txt": "amd64" })] } },
    { platform: { os: "linux", architecture: "arm64", variant: "v8" }, spec: { layers: [tarFiles({ "arch.txt": "arm64" })] } },
    { platform: { os: "linux", architecture: "arm", variant: "v7" }, spec: { layers: [tarFiles({ "arch.txt": "armv7" })] } },
  ]);
  // Docker Hub's "busybox" is "library/busybox" on the mirror.
  hub = await pushBusybox(mirror, "library/busybox", "latest");
  daemon = new TestDaemon("arcbox-images-registry-");
  writeFileSync(join(daemon.home, "daemon.json"), JSON.stringify({ "registry-mirrors": [mirrorProxy.url], "insecure-registries": ["10.99.0.0/16"] }));
  await daemon.start();
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await mirrorProxy?.stop();
  await Promise.all([reg?.stop(), mirror?.stop()]);
}, 60_000);

const arch = async (ref: string) => (await daemon.docker(["image", "inspect", "--format", "{{.Architecture}}{{with .Variant}}/{{.}}{{end}}", ref])).stdout.trim();

test("an index pulls the host platform by default", async () => {
  const r = await daemon.docker(["pull", multi.reference]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`Digest: ${multi.indexDigest}`);
  expect(await arch(multi.reference)).toBe(process.arch === "arm64" ? "arm64" : "amd64");
  const id = (await daemon.docker(["image", "inspect", "--format", "{{.Id}}", multi.reference])).stdout.trim();
  expect(id).toBe(multi.images[process.arch === "arm64" ? 1 : 0]!.configDigest);
});

test("--platform selects another manifest from the index", async () => {
  const r = await daemon.docker(["pull", "--platform", "linux/arm64", multi.reference]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect((await daemon.docker(["image", "inspect", "--format", "{{.Id}}", multi.reference])).stdout.trim()).toBe(multi.images[1]!.configDigest);
  const v7 = await daemon.docker(["pull", "--platform", "linux/arm/v7", multi.reference]);
  expect(v7.code).toBe(0);
  expect((await daemon.docker(["image", "inspect", "--format", "{{.Id}}", multi.reference])).stdout.trim()).toBe(multi.images[2]!.configDigest);
  const none = await daemon.docker(["pull", "--platform", "linux/s390x", multi.reference]);
  expect(none.code).toBe(1);
  expect(none.stderr).toContain("no matching manifest for linux/s390x");
});

test("a single-platform image pulled with a different --platform is refused", async () => {
  const amd = multi.images[0]!;
  const r = await daemon.docker(["pull", "--platform", "linux/arm64", amd.reference]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("does not match the specified platform");
});

test("Docker Hub names are pulled through the configured mirror", async () => {
  const r = await daemon.docker(["pull", "busybox"]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("Status: Downloaded newer image for busybox:latest");
  expect(mirrorProxy.requests).toContain("GET /v2/library/busybox/manifests/latest");
  const tags = (await daemon.docker(["image", "inspect", "--format", "{{json .RepoTags}} {{.Id}}", "busybox"])).stdout.trim();
  expect(tags).toBe(`["busybox:latest"] ${hub.configDigest}`);
  const info = (await (await daemon.api("/info")).json()) as { RegistryConfig: { Mirrors: string[]; InsecureRegistryCIDRs: string[] } };
  expect(info.RegistryConfig.Mirrors).toEqual([`${mirrorProxy.url}/`]);
  expect(info.RegistryConfig.InsecureRegistryCIDRs).toContain("10.99.0.0/16");
  const cli = await daemon.docker(["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
  expect(JSON.parse(cli.stdout)).toEqual([`${mirrorProxy.url}/`]);
});
