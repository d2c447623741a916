import { afterAll, beforeAll, expect, test } from "bun:test";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";

let reg: TestRegistry;
beforeAll(async () => {
  reg = await startRegistry({ auth: { username: "tester", password: "s3cret" } });
});
afterAll(() => reg?.stop());

test("the test registry refuses anonymous pulls and accepts a pushed busybox image", async () => {
  expect((await fetch(`${reg.url}/v2/`)).status).toBe(401);
  const img = await pushBusybox(reg);
  const res = await fetch(`${reg.url}/v2/busybox/manifests/latest`, {
    headers: { Authorization: `Basic ${btoa("tester:s3cret")}`, Accept: "application/vnd.docker.distribution.manifest.v2+json" },
  });
  expect(res.status).toBe(200);
  expect(res.headers.get("docker-content-digest")).toBe(img.manifestDigest);
  const manifest = (await res.json()) as { layers: { size: number }[] };
  expect(manifest.layers).toHaveLength(1);
  expect(manifest.layers[0].size).toBeGreaterThan(500_000);
});
