/**
 * imaged's CONTRACT for containers: PrepareRootfs gives overlayfs lower dirs whose
 * union is the image, plus an upper/work pair; ReleaseRootfs removes them.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let img: PushedImage;
let clients: ServiceClients;
const mounts: string[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  img = await pushBusybox(reg);
  daemon = new TestDaemon("arcbox-imaged-rootfs-");
  await daemon.start();
  clients = new ServiceClients(arcboxHome(daemon.home));
  const pull = await daemon.docker(["pull", img.reference]);
  if (pull.code !== 0) throw new Error(pull.stderr);
}, 120_000);

afterAll(async () => {
  for (const m of mounts) {
    await run(["umount", m]);
    rmSync(m, { recursive: true, force: true });
  }
  await daemon?.dispose();
  await reg?.stop();
}, 60_000);

test("PrepareRootfs gives lower dirs whose overlay union contains /bin/busybox", async () => {
  const res = await clients.images.prepareRootfs({ image: img.reference, containerId: "c0ffee01" });
  expect(res.imageId).toBe(img.configDigest);
  expect(res.lowerDirs.length).toBe(1);
  expect(JSON.parse(res.configJson).config.Cmd).toEqual(["sh"]);
  expect(res.upperDir.startsWith(join(daemon.home, "data", "imaged"))).toBe(true);
  expect(existsSync(res.upperDir) && existsSync(res.workDir)).toBe(true);

  const merged = mkdtempSync(join(tmpdir(), "arcbox-merged-"));
  const m = await run(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${res.lowerDirs.join(":")},upperdir=${res.upperDir},workdir=${res.workDir}`, merged]);
  expect(m.stderr).toBe("");
  mounts.push(merged);
  expect(existsSync(join(merged, "bin", "busybox"))).toBe(true);
  const echo = await run(["chroot", merged, "/bin/sh", "-c", "echo hi from $(basename $0)"]);
  expect(echo.stdout.trim()).toBe("hi from sh");
  expect(readFileSync(join(merged, "etc", "passwd"), "utf8")).toContain("root:x:0:0");
});

test("an image in use cannot be removed; after ReleaseRootfs it can", async () => {
  const prep = await clients.images.prepareRootfs({ image: img.configDigest, containerId: "c0ffee02" });
  const busy = await daemon.api(`/images/${encodeURIComponent(img.reference)}`, { method: "DELETE" });
  expect(busy.status).toBe(409);
  // Idempotent release of both containers (and of an unknown one).
  for (const id of ["c0ffee01", "c0ffee02", "c0ffee02", "never-prepared"]) await clients.images.releaseRootfs({ containerId: id });
  expect(existsSync(prep.upperDir)).toBe(false);
  for (const m of mounts.splice(0)) {
    await run(["umount", m]);
    rmSync(m, { recursive: true, force: true });
  }
  const rm = await daemon.docker(["rmi", img.reference]);
  expect(rm.code).toBe(0);
  expect(rm.stdout).toContain(`Untagged: ${img.reference}`);
  expect(rm.stdout).toContain(`Deleted: ${img.configDigest}`);
  expect(existsSync(prep.lowerDirs[0]!)).toBe(false);
});

test("PrepareRootfs of an unknown image is not_found", async () => {
  const err = await clients.images.prepareRootfs({ image: "nope:1", containerId: "c0ffee03" }).catch((e) => e);
  expect(String(err.message)).toContain("No such image: nope:1");
});
