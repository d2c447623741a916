/**
 * docker images (with filters), history, tag, rmi, image prune and name
 * normalization, through the real docker CLI.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { test } from "../helpers/engine-mode.ts";
import { TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, pushImage, tarFiles, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let busybox: PushedImage;
let old: PushedImage;
let labelled: PushedImage;

const lines = (s: string) => s.trim().split("\n").filter(Boolean).sort();

beforeAll(async () => {
  reg = await startRegistry();
  busybox = await pushBusybox(reg);
  old = await pushImage(reg, "old", "v1", { layers: [tarFiles({ "old.txt": "old" })], created: "2020-01-01T00:00:00Z" });
  labelled = await pushImage(reg, "labelled", "v1", {
    layers: [tarFiles({ "a.txt": "a" }), tarFiles({ "b.txt": "bb" })],
    config: { Labels: { tier: "web", owner: "qa" } },
    created: "2024-06-01T00:00:00Z",
    emptyHistory: ["ENV X=1"],
  });
  daemon = new TestDaemon("arcbox-images-manage-");
  await daemon.start();
  for (const ref of [busybox.reference, old.reference, labelled.reference]) {
    const r = await daemon.docker(["pull", "-q", ref]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await reg?.stop();
}, 60_000);

test("docker images lists every pulled image, newest first", async () => {
  const r = await daemon.docker(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
  expect(r.code).toBe(0);
  const rows = r.stdout.trim().split("\n");
  expect(rows).toEqual([
    `${reg.host}/busybox:latest ${busybox.configDigest.slice(7, 19)}`,
    `${reg.host}/labelled:v1 ${labelled.configDigest.slice(7, 19)}`,
    `${reg.host}/old:v1 ${old.configDigest.slice(7, 19)}`,
  ]);
  const q = await daemon.docker(["images", "-q", "--no-trunc"]);
  expect(lines(q.stdout)).toEqual([busybox.configDigest, labelled.configDigest, old.configDigest].sort());
});

test("filters: reference, label, before, since", async () => {
  const byRef = await daemon.docker(["images", "--format", "{{.Repository}}", "--filter", `reference=${reg.host}/lab*`]);
  expect(lines(byRef.stdout)).toEqual([`${reg.host}/labelled`]);
  const byLabel = await daemon.docker(["images", "-q", "--filter", "label=tier=web"]);
  expect(lines(byLabel.stdout)).toEqual([labelled.configDigest.slice(7, 19)]);
  const byKey = await daemon.docker(["images", "-q", "--filter", "label=owner"]);
  expect(lines(byKey.stdout)).toEqual([labelled.configDigest.slice(7, 19)]);
  const before = await daemon.docker(["images", "-q", "--filter", `before=${labelled.reference}`]);
  expect(lines(before.stdout)).toEqual([old.configDigest.slice(7, 19)]);
  const since = await daemon.docker(["images", "-q", "--filter", `since=${labelled.reference}`]);
  expect(lines(since.stdout)).toEqual([busybox.configDigest.slice(7, 19)]);
  const bad = await daemon.api(`/images/json?filters=${encodeURIComponent(JSON.stringify({ color: { red: true } }))}`);
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { message: string }).message).toContain("invalid filter 'color'");
});

test("docker history lists layers and empty steps, newest first", async () => {
  const r = await daemon.docker(["history", "--no-trunc", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}", labelled.reference]);
  expect(r.code).toBe(0);
  const rows = r.stdout.trim().split("\n");
  expect(rows).toHaveLength(3);
  expect(rows[0]).toBe(`${labelled.configDigest}|ENV X=1|0B`);
  expect(rows[1]!.startsWith("<missing>|arcbox-test layer 1|")).toBe(true);
  expect(rows[2]!.startsWith("<missing>|arcbox-test layer 0|")).toBe(true);
});

test("docker tag and name normalization: busybox is docker.io/library/busybox:latest", async () => {
  expect((await daemon.docker(["tag", busybox.reference, "busybox"])).code).toBe(0);
  expect((await daemon.docker(["tag", busybox.configDigest.slice(7, 19), "me/tools:1.0"])).code).toBe(0);
  const insp = await daemon.docker(["image", "inspect", "--format", "{{json .RepoTags}}", "docker.io/library/busybox:latest"]);
  expect(JSON.parse(insp.stdout).sort()).toEqual([`${reg.host}/busybox:latest`, "busybox:latest", "me/tools:1.0"].sort());
  for (const ref of ["busybox", "library/busybox", "docker.io/me/tools:1.0", "index.docker.io/me/tools:1.0"]) {
    const r = await daemon.docker(["image", "inspect", "--format", "{{.Id}}", ref]);
    expect(r.stdout.trim()).toBe(busybox.configDigest);
  }
  const bad = await daemon.docker(["tag", busybox.reference, "Bad:Name"]);
  expect(bad.code).not.toBe(0);
  const missing = await daemon.api(`/images/nope/tag?repo=x&tag=y`, { method: "POST" });
  expect(missing.status).toBe(404);
});

test("docker rmi untags while other tags remain, refuses an ambiguous ID, and -f deletes", async () => {
  const untag = await daemon.docker(["rmi", "me/tools:1.0"]);
  expect(untag.code).toBe(0);
  expect(untag.stdout.trim()).toBe("Untagged: me/tools:1.0");
  const ambiguous = await daemon.docker(["rmi", busybox.configDigest.slice(7, 19)]);
  expect(ambiguous.code).toBe(1);
  expect(ambiguous.stderr).toContain("image is referenced in multiple repositories");
  const raw = await daemon.api(`/images/${busybox.configDigest.slice(7, 19)}`, { method: "DELETE" });
  expect(raw.status).toBe(409);
  const force = await daemon.docker(["rmi", "-f", busybox.configDigest.slice(7, 19)]);
  expect(force.code).toBe(0);
  expect(force.stdout).toContain("Untagged: busybox:latest");
  expect(force.stdout).toContain(`Untagged: ${reg.host}/busybox:latest`);
  expect(force.stdout).toContain(`Deleted: ${busybox.configDigest}`);
  const gone = await daemon.docker(["image", "inspect", busybox.configDigest]);
  expect(gone.code).toBe(1);
  const unknown = await daemon.docker(["rmi", "nope:1"]);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toContain("No such image: nope:1");
});

test("a re-pushed tag leaves a dangling image that image prune removes", async () => {
  await pushImage(reg, "old", "v1", { layers: [tarFiles({ "new.txt": "new" })], created: "2025-01-01T00:00:00Z" });
  expect((await daemon.docker(["pull", "-q", old.reference])).code).toBe(0);
  const dangling = await daemon.docker(["images", "-q", "--no-trunc", "--filter", "dangling=true"]);
  expect(lines(dangling.stdout)).toEqual([old.configDigest]);
  const prune = await daemon.docker(["image", "prune", "-f"]);
  expect(prune.code).toBe(0);
  expect(prune.stdout).toContain(`deleted: ${old.configDigest}`);
  expect((await daemon.docker(["images", "-q", "--filter", "dangling=true"])).stdout.trim()).toBe("");
  const info = await daemon.api("/info");
  expect(((await info.json()) as { Images: number }).Images).toBe(2);
});

test("docker system df reports image usage", async () => {
  const r = await daemon.docker(["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Active}}"]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("Images 2 0");
  const raw = (await (await daemon.api("/system/df")).json()) as { LayersSize: number; Images: { Id: string; Size: number; SharedSize: number }[] };
  expect(raw.Images).toHaveLength(2);
  expect(raw.LayersSize).toBeGreaterThan(0);
  for (const i of raw.Images) expect(i.SharedSize).toBeGreaterThanOrEqual(0);
});

test("older API versions get the fields they expect (VirtualSize)", async () => {
  const old = (await (await daemon.api("/v1.41/images/json")).json()) as { VirtualSize?: number; Size: number }[];
  expect(old[0]!.VirtualSize).toBe(old[0]!.Size);
  const current = (await (await daemon.api("/v1.50/images/json")).json()) as { VirtualSize?: number }[];
  expect(current[0]!.VirtualSize).toBeUndefined();
});
