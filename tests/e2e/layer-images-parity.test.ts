/**
 * A multi-layer image with whiteouts, an opaque dir, hard links, a fifo, symlinks,
 * modes, owners and device nodes looks the same in a container under ArcBox (layers
 * as loop-mounted squashfs images) and under Docker Engine (unpacked overlay2): the
 * image goes to Docker with `docker save | docker load`, and `stat` of every path
 * below /data is compared line by line.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDockerd, type DockerEngine } from "../../bench/lib/dockerd.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { buildBusyboxRootfs, pushImage, rawTar, tarDirectory, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let engine: DockerEngine;
let img: PushedImage;
const work = mkdtempSync(join(tmpdir(), "arcbox-layer-parity-"));

beforeAll(async () => {
  reg = await startRegistry();
  const bb = join(work, "rootfs");
  buildBusyboxRootfs(bb);
  const layers = [
    tarDirectory(bb),
    rawTar([
      { name: "data/", type: "5", mode: 0o755 },
      { name: "data/gone", data: "will be whited out" },
      { name: "data/keep", data: "kept", mode: 0o640, uid: 1000, gid: 1001 },
      { name: "data/opq/", type: "5", mode: 0o750 },
      { name: "data/opq/old", data: "hidden by the opaque dir" },
      { name: "data/tree/", type: "5" },
      { name: "data/tree/leaf", data: "leaf" },
    ]),
    rawTar([
      { name: "data/.wh.gone" },
      { name: "data/opq/", type: "5", mode: 0o700, uid: 7 },
      { name: "data/opq/.wh..wh..opq" },
      { name: "data/opq/new", data: "new" },
      { name: "data/tree/.wh.leaf" },
      { name: "data/suid", data: "#!/bin/sh\n", mode: 0o4755 },
      { name: "data/hard", type: "1", linkname: "data/suid", mode: 0o4755 },
      { name: "data/sym", type: "2", linkname: "keep" },
      { name: "data/dangling", type: "2", linkname: "/nowhere" },
      { name: "data/fifo", type: "6", mode: 0o620 },
      { name: "data/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
      { name: "data/blk", type: "4", devmajor: 7, devminor: 200, mode: 0o600 },
      { name: "data/sticky/", type: "5", mode: 0o1777 },
    ]),
  ];
  img = await pushImage(reg, "parity", "v1", { layers, config: { Cmd: ["sh"] } });
  daemon = new TestDaemon("arcbox-layer-parity-");
  [, engine] = await Promise.all([daemon.start(), startDockerd()]);
  const pull = await daemon.docker(["pull", "-q", img.reference]);
  if (pull.code !== 0) throw new Error(pull.stderr);
  const archive = join(work, "parity.tar");
  if ((await daemon.docker(["save", "-o", archive, img.reference])).code !== 0) throw new Error("save failed");
  const load = await run(["docker", "-H", engine.host, "load", "-i", archive]);
  if (load.code !== 0) throw new Error(load.stderr);
}, 180_000);

afterAll(async () => {
  await engine?.stop();
  await daemon?.dispose();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

const LIST = "find /data | sort | xargs stat -c '%n %A %u %g %s %h %t:%T %N'";
/** Directory sizes are the filesystem's own (4096 on ext4, entry bytes on squashfs): masked. */
const listing = (out: string) =>
  out
    .trim()
    .split("\n")
    .map((l) => l.replace(/^(\S+ d\S+ \d+ \d+) \d+ /, "$1 - "));

test("the image's content is identical under ArcBox and Docker Engine", async () => {
  expect(readdirSync(join(daemon.home, "data", "imaged", "layer-images"))).toHaveLength(3);
  const ours = await daemon.docker(["run", "--rm", "--network", "none", img.reference, "sh", "-c", LIST]);
  const theirs = await run(["docker", "-H", engine.host, "run", "--rm", "--network", "none", img.reference, "sh", "-c", LIST]);
  expect(theirs.stderr).toBe("");
  expect(ours.stderr).toBe("");
  const lines = listing(ours.stdout);
  // The whiteouts and the opaque dir did their work (so the comparison is not of two empty lists).
  expect(lines.some((l) => l.startsWith("/data/gone "))).toBe(false);
  expect(lines.some((l) => l.startsWith("/data/opq/old "))).toBe(false);
  expect(lines.some((l) => l.startsWith("/data/opq/new "))).toBe(true);
  expect(lines.find((l) => l.startsWith("/data/null "))).toContain(" 1:3 ");
  expect(lines).toEqual(listing(theirs.stdout));
}, 60_000);
