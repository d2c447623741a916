/**
 * docker pull / image inspect against a real ArcBox daemon and a local registry.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, pushImage, rawTar, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let img: PushedImage;

beforeAll(async () => {
  reg = await startRegistry();
  img = await pushBusybox(reg);
  daemon = new TestDaemon("arcbox-images-pull-");
  await daemon.start();
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await reg?.stop();
}, 60_000);

test("docker pull from a loopback registry renders progress and reports the digest", async () => {
  const r = await daemon.docker(["pull", img.reference]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("latest: Pulling from");
  expect(r.stdout).toContain("Pull complete");
  expect(r.stdout).toContain(`Digest: ${img.manifestDigest}`);
  expect(r.stdout).toContain(`Status: Downloaded newer image for ${img.reference}`);
});

test("docker image inspect shows the pulled image by name, ID and short ID", async () => {
  const r = await daemon.docker(["image", "inspect", img.reference]);
  expect(r.code).toBe(0);
  const [info] = JSON.parse(r.stdout);
  expect(info.Id).toBe(img.configDigest);
  expect(info.RepoTags).toEqual([img.reference]);
  expect(info.RepoDigests).toEqual([`${reg.host}/busybox@${img.manifestDigest}`]);
  expect(info.Config.Cmd).toEqual(["sh"]);
  expect(info.Os).toBe("linux");
  expect(info.RootFS.Layers).toHaveLength(1);
  expect(info.Size).toBeGreaterThan(500_000);
  for (const ref of [img.configDigest, img.configDigest.slice(7, 19), `${reg.host}/busybox@${img.manifestDigest}`]) {
    const byRef = await daemon.docker(["image", "inspect", "--format", "{{.Id}}", ref]);
    expect(byRef.stdout.trim()).toBe(img.configDigest);
  }
});

test("pulling again says the image is up to date", async () => {
  const r = await daemon.docker(["pull", img.reference]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`Status: Image is up to date for ${img.reference}`);
});

test("pulling an unknown repository fails with a clear not-found error", async () => {
  const r = await daemon.docker(["pull", `${reg.host}/nope:1`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain(`manifest for ${reg.host}/nope:1 not found`);
  const raw = await daemon.api(`/images/create?fromImage=${reg.host}/nope&tag=1`, { method: "POST" });
  expect(raw.status).toBe(404);
  expect(((await raw.json()) as { message: string }).message).toContain("not found");
});

test("inspecting an unknown image is a 404 with Docker's message", async () => {
  const r = await daemon.api("/images/nosuchimage:9/json");
  expect(r.status).toBe(404);
  expect(await r.json()).toEqual({ message: "No such image: nosuchimage:9" });
  const cli = await daemon.docker(["image", "inspect", "nosuchimage:9"]);
  expect(cli.code).toBe(1);
  expect(cli.stderr).toContain("No such image: nosuchimage:9");
});

test("docker pull -a pulls every tag of the repository", async () => {
  await pushBusybox(reg, "multi-tag", "one");
  await pushBusybox(reg, "multi-tag", "two", { config: { Cmd: ["echo", "two"] } });
  const r = await daemon.docker(["pull", "-a", `${reg.host}/multi-tag`]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`one: Pulling from ${reg.host}/multi-tag`);
  expect(r.stdout).toContain(`two: Pulling from ${reg.host}/multi-tag`);
  expect(r.stdout).toContain(`Status: Downloaded newer image for ${reg.host}/multi-tag`);
  const tags = await daemon.docker(["images", "--format", "{{.Tag}}", `${reg.host}/multi-tag`]);
  expect(tags.stdout.trim().split("\n").sort()).toEqual(["one", "two"]);
});

test("concurrent pulls of the same image share the download and both succeed", async () => {
  await pushBusybox(reg, "concurrent", "v1", { config: { Env: ["X=concurrent"] } });
  const [a, b] = await Promise.all([daemon.docker(["pull", `${reg.host}/concurrent:v1`]), daemon.docker(["pull", `${reg.host}/concurrent:v1`])]);
  expect([a.code, b.code]).toEqual([0, 0]);
  const insp = await daemon.docker(["image", "inspect", "--format", "{{json .Config.Env}}", `${reg.host}/concurrent:v1`]);
  expect(JSON.parse(insp.stdout)).toEqual(["X=concurrent"]);
});

test("the raw pull stream is Docker's JSON messages, with byte progress for downloads", async () => {
  const noise = new Uint8Array(512 * 1024);
  crypto.getRandomValues(noise.subarray(0, 65536));
  await pushImage(reg, "raw-stream", "v1", { layers: [rawTar([{ name: "noise", data: noise }])] });
  const res = await daemon.api(`/images/create?fromImage=${reg.host}/raw-stream&tag=v1`, { method: "POST" });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/json");
  const messages = (await res.text())
    .trim()
    .split(/\r?\n/)
    .map((l) => JSON.parse(l));
  expect(messages[0]).toEqual({ status: `Pulling from ${reg.host}/raw-stream`, progressDetail: {}, id: "v1" });
  const downloading = messages.find((m) => m.status === "Downloading");
  expect(downloading.progressDetail.total).toBeGreaterThan(0);
  expect(downloading.progressDetail.current).toBeGreaterThan(0);
  expect(downloading.id).toMatch(/^[a-f0-9]{12}$/);
  expect(messages.some((m) => m.status === "Pull complete")).toBe(true);
  expect(messages.at(-1)).toEqual({ status: `Status: Downloaded newer image for ${reg.host}/raw-stream:v1`, progressDetail: {} });
});
