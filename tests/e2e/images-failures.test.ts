/**
 * Pull failures: a registry that drops the connection mid-blob, one that sends the
 * wrong bytes, a truncated layer; each is a clear error and leaves nothing
 * half-written. Garbage collection keeps layers another image still uses.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, startRegistryProxy, type RegistryProxy, type TestRegistry } from "../helpers/registry.ts";
import { pushBlob, pushImage, pushManifest, rawTar, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let cutting: RegistryProxy;
let corrupting: RegistryProxy;
let slow: RegistryProxy;
let plain: RegistryProxy;
let daemon: TestDaemon;
let big: PushedImage;

// ~3 MB of incompressible data, so the cut happens mid-download.
const noise = new Uint8Array(3 << 20);
for (let i = 0; i < noise.length; i += 65536) crypto.getRandomValues(noise.subarray(i, i + 65536));

beforeAll(async () => {
  reg = await startRegistry();
  big = await pushImage(reg, "big", "v1", { layers: [rawTar([{ name: "noise.bin", data: noise }]), rawTar([{ name: "small.txt", data: "s" }])] });
  cutting = await startRegistryProxy(reg, { cutBlobAfter: 1 << 20 });
  corrupting = await startRegistryProxy(reg, { corruptBlobs: true });
  slow = await startRegistryProxy(reg, { slowBlobsMs: 20 });
  plain = await startRegistryProxy(reg);
  daemon = new TestDaemon("arcbox-images-failures-");
  await daemon.start();
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await Promise.all([cutting?.stop(), corrupting?.stop(), slow?.stop(), plain?.stop()]);
  await reg?.stop();
}, 60_000);

const dataDir = () => join(daemon.home, "data", "imaged");
/** Layers in either form: squashfs images (temp ones included) and unpacked dirs. */
const storedLayers = () => [...readdirSync(join(dataDir(), "layer-images")), ...readdirSync(join(dataDir(), "snapshots"))];
function storeIsClean() {
  expect(readdirSync(join(dataDir(), "ingest"))).toEqual([]);
  expect(readdirSync(join(dataDir(), "snapshots-tmp"))).toEqual([]);
  expect(storedLayers()).toEqual([]);
}

test("a registry that drops the connection mid-blob: clear error, nothing half-written", async () => {
  const r = await daemon.docker(["pull", `${cutting.host}/big:v1`]);
  expect(r.code).toBe(1);
  expect(r.stderr + r.stdout).toMatch(/error downloading layer sha256:[a-f0-9]{64}/);
  // A partial download may stay in ingest/ for a resume; never under blobs/.
  expect(readdirSync(join(dataDir(), "ingest")).every((n) => n.startsWith("partial-"))).toBe(true);
  expect(readdirSync(join(dataDir(), "snapshots-tmp"))).toEqual([]);
  // The small layer may have completed: it stays, verified, for the next pull to reuse.
  expect(readdirSync(join(dataDir(), "snapshots")).length).toBeLessThanOrEqual(1);
  expect((await daemon.docker(["image", "inspect", `${cutting.host}/big:v1`])).code).toBe(1);
  // Only complete, verified blobs may remain (the small layer and the config).
  for (const hex of readdirSync(join(dataDir(), "blobs", "sha256"))) {
    const bytes = await Bun.file(join(dataDir(), "blobs", "sha256", hex)).bytes();
    expect(new Bun.CryptoHasher("sha256").update(bytes).digest("hex")).toBe(hex);
  }
});

test("the same pull from a healthy registry then resumes the broken blob with a Range request", async () => {
  const r = await daemon.docker(["pull", `${plain.host}/big:v1`]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("Pull complete");
  expect(r.stdout).toMatch(/Resuming from \d+ bytes/);
  expect(plain.requests.some((q) => /^GET \/v2\/big\/blobs\/sha256:[a-f0-9]{64} range=bytes=\d+-$/.test(q))).toBe(true);
  expect(readdirSync(join(dataDir(), "ingest"))).toEqual([]);
  expect((await daemon.docker(["rmi", `${plain.host}/big:v1`])).code).toBe(0);
  storeIsClean();
  // And a pull from scratch works as well.
  const again = await daemon.docker(["pull", big.reference]);
  expect(again.code).toBe(0);
  expect(storedLayers()).toHaveLength(2);
  expect((await daemon.docker(["rmi", big.reference])).code).toBe(0);
  storeIsClean();
});

test("a registry sending the wrong bytes: digest mismatch, nothing stored", async () => {
  const r = await daemon.docker(["pull", `${corrupting.host}/big:v1`]);
  expect(r.code).toBe(1);
  expect(r.stderr + r.stdout).toContain("digest mismatch");
  storeIsClean();
});

test("a corrupt gzip layer with a matching digest is refused and removed", async () => {
  const gz = Bun.gzipSync(rawTar([{ name: "f", data: "x".repeat(10_000) }]) as Uint8Array<ArrayBuffer>);
  const broken = gz.slice(0, gz.length - 40); // truncated deflate stream, valid blob
  const layerDigest = await pushBlob(reg, "broken", broken);
  const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [`sha256:${"1".repeat(64)}`] } }));
  const configDigest = await pushBlob(reg, "broken", config);
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.docker.distribution.manifest.v2+json",
      config: { mediaType: "application/vnd.docker.container.image.v1+json", size: config.length, digest: configDigest },
      layers: [{ mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", size: broken.length, digest: layerDigest }],
    }),
  );
  await pushManifest(reg, "broken", "v1", "application/vnd.docker.distribution.manifest.v2+json", manifest);
  const r = await daemon.docker(["pull", `${reg.host}/broken:v1`]);
  expect(r.code).toBe(1);
  expect(r.stderr + r.stdout).toMatch(/corrupt|unexpected end|truncated/);
  storeIsClean();
  expect(readdirSync(join(dataDir(), "blobs", "sha256"))).not.toContain(layerDigest.slice(7));
});

test("removing one image keeps the layers another image shares", async () => {
  const shared = rawTar([{ name: "shared.txt", data: "shared" }]);
  const a = await pushImage(reg, "share-a", "v1", { layers: [shared, rawTar([{ name: "a", data: "a" }])] });
  const b = await pushImage(reg, "share-b", "v1", { layers: [shared, rawTar([{ name: "b", data: "b" }])] });
  expect((await daemon.docker(["pull", "-q", a.reference])).code).toBe(0);
  const pb = await daemon.docker(["pull", b.reference]);
  expect(pb.stdout).toContain("Already exists");
  expect(storedLayers()).toHaveLength(3);
  const rm = await daemon.docker(["rmi", a.reference]);
  expect(rm.code).toBe(0);
  expect(storedLayers()).toHaveLength(2);
  const prune = await daemon.docker(["image", "prune", "-a", "-f"]);
  expect(prune.code).toBe(0);
  storeIsClean();
  expect(readdirSync(join(dataDir(), "blobs", "sha256"))).toEqual([]);
});

test("imaged killed mid-pull: the pull fails naming imaged, and the restarted imaged removes the partial files", async () => {
  const clients = new ServiceClients(arcboxHome(daemon.home));
  const { pid } = await clients.health("imaged").check({});
  const pulling = daemon.docker(["pull", `${slow.host}/big:v1`]);
  // Wait (bounded) until the download is under way: partial files exist.
  const deadline = Date.now() + 20_000;
  while (readdirSync(join(dataDir(), "ingest")).length === 0) {
    if (Date.now() > deadline) throw new Error("the pull never started writing");
    await Bun.sleep(20);
  }
  process.kill(pid, "SIGKILL");
  const r = await pulling;
  expect(r.code).toBe(1);
  // Says which service failed, not the socket error's own text.
  expect(r.stderr + r.stdout).toContain("the image service (imaged) stopped unexpectedly; try again");
  expect(r.stderr + r.stdout).not.toMatch(/ECONNRESET|verbose|\[unknown\]/);
  // The next call starts a fresh imaged, which clears what the dead one left.
  const after = await clients.health("imaged").check({});
  expect(after.pid).not.toBe(pid);
  expect(readdirSync(join(dataDir(), "ingest"))).toEqual([]);
  expect(readdirSync(join(dataDir(), "snapshots-tmp"))).toEqual([]);
  expect(readdirSync(join(dataDir(), "layer-images")).filter((n) => n.startsWith("tmp-"))).toEqual([]);
  expect((await daemon.docker(["image", "inspect", `${slow.host}/big:v1`])).code).toBe(1);
  const again = await daemon.docker(["pull", big.reference]);
  expect(again.code).toBe(0);
}, 60_000);
