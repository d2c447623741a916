/**
 * docker login / push / pull with registry auth: Basic (htpasswd) and Bearer tokens,
 * credentials carried by X-Registry-Auth.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, startRegistryProxy, type RegistryProxy, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, pushImage, pushManifest, tarFiles, type PushedImage } from "../helpers/test-images.ts";

let open: TestRegistry;
let basic: TestRegistry;
let bearer: RegistryProxy;
let daemon: TestDaemon;
let img: PushedImage;
const dockerConfig = mkdtempSync(join(tmpdir(), "arcbox-docker-config-"));
const env = { DOCKER_CONFIG: dockerConfig };

beforeAll(async () => {
  [open, basic] = await Promise.all([startRegistry(), startRegistry({ auth: { username: "alice", password: "wonderland" } })]);
  bearer = await startRegistryProxy(open, { bearer: { username: "bob", password: "builder" } });
  img = await pushBusybox(open);
  daemon = new TestDaemon("arcbox-images-push-");
  await daemon.start();
  const pull = await daemon.docker(["pull", "-q", img.reference]);
  if (pull.code !== 0) throw new Error(pull.stderr);
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await bearer?.stop();
  await Promise.all([open?.stop(), basic?.stop()]);
  rmSync(dockerConfig, { recursive: true, force: true });
}, 60_000);

test("docker push to an open registry, then pull it back by digest elsewhere", async () => {
  expect((await daemon.docker(["tag", img.reference, `${open.host}/copy/busybox:v2`])).code).toBe(0);
  const r = await daemon.docker(["push", `${open.host}/copy/busybox:v2`]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(`The push refers to repository [${open.host}/copy/busybox]`);
  // Same registry: the layer is mounted from the repository it came from, not uploaded.
  expect(r.stdout).toContain(`Mounted from ${open.host}/busybox`);
  // Same blobs, same manifest: the digest matches the original push.
  expect(r.stdout).toContain(`v2: digest: ${img.manifestDigest}`);
  const res = await fetch(`${open.url}/v2/copy/busybox/manifests/v2`, { headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" } });
  expect(res.headers.get("docker-content-digest")).toBe(img.manifestDigest);
  const again = await daemon.docker(["push", `${open.host}/copy/busybox:v2`]);
  expect(again.stdout).toContain("Layer already exists");
});

test("docker push of a tag that does not exist locally fails", async () => {
  const r = await daemon.docker(["push", `${open.host}/absent:v9`]);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain("An image does not exist locally with the tag");
});

test("docker login to a Basic-auth registry: wrong password is refused, right one succeeds; push and pull use it", async () => {
  const bad = await daemon.docker(["login", basic.host, "-u", "alice", "--password-stdin"], { env, stdin: "nope" });
  expect(bad.code).toBe(1);
  expect(bad.stderr).toContain("unauthorized");
  const raw = await daemon.api("/auth", { method: "POST", body: JSON.stringify({ username: "alice", password: "nope", serveraddress: basic.host }), headers: { "Content-Type": "application/json" } });
  expect(raw.status).toBe(401);
  const anonymous = await daemon.docker(["push", `${basic.host}/private:1`], { env });
  expect(anonymous.code).toBe(1);

  const good = await daemon.docker(["login", basic.host, "-u", "alice", "--password-stdin"], { env, stdin: "wonderland" });
  expect(good.stderr).not.toContain("Error");
  expect(good.stdout).toContain("Login Succeeded");
  expect((await daemon.docker(["tag", img.reference, `${basic.host}/private:1`])).code).toBe(0);
  const push = await daemon.docker(["push", `${basic.host}/private:1`], { env });
  expect(push.stderr).toBe("");
  expect(push.code).toBe(0);
  expect((await daemon.docker(["rmi", `${basic.host}/private:1`])).code).toBe(0);
  const pull = await daemon.docker(["pull", `${basic.host}/private:1`], { env });
  expect(pull.code).toBe(0);
  expect(pull.stdout).toContain(`Digest: ${img.manifestDigest}`);
});

test("Bearer-token registries: pull and push fetch a token with the given credentials", async () => {
  const anon = await daemon.docker(["pull", `${bearer.host}/busybox:latest`], { env });
  expect(anon.code).toBe(1);
  expect(anon.stderr).toMatch(/unauthorized|access denied/);
  const login = await daemon.docker(["login", bearer.host, "-u", "bob", "--password-stdin"], { env, stdin: "builder" });
  expect(login.stdout).toContain("Login Succeeded");
  const pull = await daemon.docker(["pull", `${bearer.host}/busybox:latest`], { env });
  expect(pull.stderr).toBe("");
  expect(pull.code).toBe(0);
  expect(bearer.requests).toContain("GET /token");
  expect((await daemon.docker(["tag", img.reference, `${bearer.host}/pushed:1`])).code).toBe(0);
  const push = await daemon.docker(["push", `${bearer.host}/pushed:1`], { env });
  expect(push.stderr).toBe("");
  expect(push.code).toBe(0);
});

test("a pulled image is pushed with its original manifest, so the digest is preserved", async () => {
  const base = await pushImage(open, "annotated", "base", { layers: [tarFiles({ "f.txt": "annotated" })], format: "oci" });
  const doc = JSON.parse(new TextDecoder().decode(base.manifest));
  doc.annotations = { "org.opencontainers.image.source": "https://example.invalid/arcbox" };
  const body = new TextEncoder().encode(JSON.stringify(doc, null, 2));
  const digest = await pushManifest(open, "annotated", "v1", "application/vnd.oci.image.manifest.v1+json", body);
  expect((await daemon.docker(["pull", "-q", `${open.host}/annotated:v1`])).code).toBe(0);
  expect((await daemon.docker(["tag", `${open.host}/annotated:v1`, `${open.host}/mirror/annotated:v1`])).code).toBe(0);
  const push = await daemon.docker(["push", `${open.host}/mirror/annotated:v1`]);
  expect(push.code).toBe(0);
  expect(push.stdout).toContain(`v1: digest: ${digest}`);
});
