/**
 * GET /distribution/{name}/json (issue 9): the registry's descriptor and platforms for
 * a reference, without pulling, as dockerd answers it (compared against Debian's
 * dockerd on the same registry contents). Through the raw API and python3-docker's
 * images.get_registry_data.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { run, TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushImage, pushIndex, rawTar, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let authReg: TestRegistry;
let single: PushedImage;
let oci: PushedImage;
let index: Awaited<ReturnType<typeof pushIndex>>;
const d = new TestDaemon("arcbox-distribution-");
const layer = rawTar([{ name: "a.txt", data: "a" }]);

beforeAll(async () => {
  reg = await startRegistry();
  authReg = await startRegistry({ auth: { username: "alice", password: "s3cret" } });
  single = await pushImage(reg, "single", "v1", { layers: [layer] });
  oci = await pushImage(reg, "ocione", "v1", { layers: [layer], format: "oci", architecture: "arm64" });
  index = await pushIndex(reg, "multi", "v1", [
    { platform: { os: "linux", architecture: "amd64" }, spec: { layers: [layer] } },
    { platform: { os: "linux", architecture: "arm", variant: "v7" }, spec: { layers: [layer] } },
  ]);
  await pushImage(authReg, "private", "v1", { layers: [layer] });
  await d.start();
}, 120_000);

afterAll(async () => {
  await d.dispose();
  await Promise.all([reg?.stop(), authReg?.stop()]);
}, 60_000);

const inspect = (name: string, headers: Record<string, string> = {}) => d.api(`/v1.50/distribution/${name}/json`, { headers });

test("a single-platform manifest: its descriptor, and the platform from its image config", async () => {
  for (const [name, img, mediaType, platform] of [
    [`${reg.host}/single:v1`, single, "application/vnd.docker.distribution.manifest.v2+json", { architecture: "amd64", os: "linux" }],
    [`${reg.host}/ocione:v1`, oci, "application/vnd.oci.image.manifest.v1+json", { architecture: "arm64", os: "linux" }],
    [`${reg.host}/single@${single.manifestDigest}`, single, "application/vnd.docker.distribution.manifest.v2+json", { architecture: "amd64", os: "linux" }],
  ] as const) {
    const r = await inspect(name);
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ Descriptor: { mediaType, digest: img.manifestDigest, size: img.manifest.length }, Platforms: [platform] });
  }
  // Nothing was pulled.
  expect(await (await d.api("/v1.50/images/json")).json()).toEqual([]);
});

test("an index: its own descriptor and every entry's platform, variant included", async () => {
  const r = await inspect(`${reg.host}/multi:v1`);
  expect(r.status).toBe(200);
  const body = (await r.json()) as { Descriptor: { mediaType: string; digest: string }; Platforms: unknown[] };
  expect(body.Descriptor.mediaType).toBe("application/vnd.oci.image.index.v1+json");
  expect(body.Descriptor.digest).toBe(index.indexDigest);
  expect(body.Platforms).toEqual([
    { architecture: "amd64", os: "linux" },
    { architecture: "arm", os: "linux", variant: "v7" },
  ]);
});

test("errors: unknown tag (no tag means latest) 404, bad name 400, image ID 400", async () => {
  const latest = await inspect(`${reg.host}/single`);
  expect(latest.status).toBe(404);
  expect(((await latest.json()) as { message: string }).message).toContain("single:latest not found: manifest unknown");
  const bad = await inspect("BAD");
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { message: string }).message).toBe("invalid reference format: repository name must be lowercase");
  const id = await inspect(`sha256:${"a".repeat(64)}`);
  expect(id.status).toBe(400);
  expect(((await id.json()) as { message: string }).message).toBe("no manifest found for full image ID");
});

test("X-Registry-Auth reaches the registry", async () => {
  expect((await inspect(`${authReg.host}/private:v1`)).status).not.toBe(200);
  const auth = Buffer.from(JSON.stringify({ username: "alice", password: "s3cret", serveraddress: authReg.host })).toString("base64url");
  const r = await inspect(`${authReg.host}/private:v1`, { "X-Registry-Auth": auth });
  expect(r.status).toBe(200);
  expect(((await r.json()) as { Platforms: unknown[] }).Platforms).toEqual([{ architecture: "amd64", os: "linux" }]);
});

test("python3-docker: images.get_registry_data", async () => {
  const script = `
import json, sys, docker
c = docker.from_env()
data = c.images.get_registry_data(sys.argv[1])
print(json.dumps({"id": data.id, "armv7": data.has_platform("linux/arm/v7"), "s390x": data.has_platform("linux/s390x")}))
`;
  const r = await run(["python3", "-c", script, `${reg.host}/multi:v1`], { env: { DOCKER_HOST: d.dockerHost } });
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout)).toEqual({ id: index.indexDigest, armv7: true, s390x: false });
});
