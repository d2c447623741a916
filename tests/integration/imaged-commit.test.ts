/**
 * Commit (docker commit's backend): changes made through an overlay mount of a
 * container's rootfs (new, changed, deleted files, a replaced directory) become a new
 * layer; a rootfs of the new image shows exactly those changes.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, linkSync, chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arcboxHome } from "../../lib/home.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushImage, rawTar, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let clients: ServiceClients;
let base: PushedImage;
const mounted: string[] = [];

beforeAll(async () => {
  reg = await startRegistry();
  base = await pushImage(reg, "base", "v1", {
    layers: [
      rawTar([
        { name: "etc/", type: "5" },
        { name: "etc/keep", data: "keep" },
        { name: "etc/drop", data: "drop" },
        { name: "cache/", type: "5" },
        { name: "cache/old1", data: "1" },
        { name: "cache/old2", data: "2" },
      ]),
    ],
    config: { Cmd: ["sh"], Env: ["A=1"] },
  });
  daemon = new TestDaemon("arcbox-imaged-commit-");
  await daemon.start();
  clients = new ServiceClients(arcboxHome(daemon.home));
  const pull = await daemon.docker(["pull", "-q", base.reference]);
  if (pull.code !== 0) throw new Error(pull.stderr);
}, 120_000);

afterAll(async () => {
  for (const m of mounted) {
    await run(["umount", m]);
    rmSync(m, { recursive: true, force: true });
  }
  await daemon?.dispose();
  await reg?.stop();
}, 60_000);

async function mount(image: string, containerId: string): Promise<string> {
  const r = await clients.images.prepareRootfs({ image, containerId });
  const dir = mkdtempSync(join(tmpdir(), "arcbox-commit-"));
  const m = await run(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${r.lowerDirs.join(":")},upperdir=${r.upperDir},workdir=${r.workDir}`, dir]);
  if (m.code !== 0) throw new Error(m.stderr);
  mounted.push(dir);
  return dir;
}

async function unmount(dir: string) {
  await run(["umount", dir]);
  mounted.splice(mounted.indexOf(dir), 1);
  rmSync(dir, { recursive: true, force: true });
}

test("a committed container's changes are the new image's top layer", async () => {
  const root = await mount(base.reference, "commit-src");
  writeFileSync(join(root, "etc/keep"), "changed");
  rmSync(join(root, "etc/drop"));
  rmSync(join(root, "cache"), { recursive: true });
  mkdirSync(join(root, "cache"));
  writeFileSync(join(root, "cache/new"), "n");
  mkdirSync(join(root, `deep/${"x".repeat(120)}`), { recursive: true });
  writeFileSync(join(root, `deep/${"x".repeat(120)}/long.txt`), "long path");
  symlinkSync("../etc/keep", join(root, "deep/link"));
  writeFileSync(join(root, "owned"), "o");
  chownSync(join(root, "owned"), 123, 456);
  linkSync(join(root, "owned"), join(root, "owned-hard"));
  await unmount(root);

  const res = await clients.images.commit({ containerId: "commit-src", reference: "committed:1", comment: "snap", author: "tester", changes: ["ENV B=2"], createdBy: "sh -c edit" });
  expect(res.id).toMatch(/^sha256:[a-f0-9]{64}$/);
  const info = JSON.parse((await daemon.docker(["image", "inspect", "committed:1"])).stdout)[0];
  expect(info.Id).toBe(res.id);
  expect(info.RootFS.Layers).toHaveLength(2);
  expect(info.Config.Env).toEqual(["A=1", "B=2"]);
  expect(info.Config.Cmd).toEqual(["sh"]);
  expect(info.Author).toBe("tester");
  const hist = await daemon.docker(["history", "--format", "{{.CreatedBy}}|{{.Comment}}", "committed:1"]);
  expect(hist.stdout.trim().split("\n")[0]).toBe("sh -c edit|snap");

  const view = await mount("committed:1", "commit-dst");
  expect(readFileSync(join(view, "etc/keep"), "utf8")).toBe("changed");
  expect(existsSync(join(view, "etc/drop"))).toBe(false);
  expect(readdirSync(join(view, "cache"))).toEqual(["new"]);
  expect(readFileSync(join(view, `deep/${"x".repeat(120)}/long.txt`), "utf8")).toBe("long path");
  expect(readFileSync(join(view, "deep/link"), "utf8")).toBe("changed");
  const owned = statSync(join(view, "owned"));
  expect([owned.uid, owned.gid]).toEqual([123, 456]);
  expect(statSync(join(view, "owned-hard")).ino).toBe(owned.ino);
  await unmount(view);
  await clients.images.releaseRootfs({ containerId: "commit-dst" });
  await clients.images.releaseRootfs({ containerId: "commit-src" });
});

test("committing a container imaged does not know is not_found", async () => {
  const err = await clients.images.commit({ containerId: "never-prepared" }).catch((e) => e);
  expect(String(err.message)).toContain("has no root filesystem");
});
