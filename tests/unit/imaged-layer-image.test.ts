/**
 * Layer images: the overlay tar filter and sqfstar, checked through a real loop mount
 * of the squashfs image and a real overlayfs mount over it (whiteouts hide, opaque
 * dirs reset); the same refusals as unpacking; layers sqfstar cannot express ask to
 * be unpacked instead.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lgetxattr } from "../../native/fs-ops.ts";
import { buildSquashfs, mountSquashfs, mountedUnder, unmount } from "../../services/imaged/platform/layer-image.ts";
import { NeedsUnpack, overlayTarFilter } from "../../services/imaged/platform/overlay-tar-filter.ts";
import { extractTar } from "../../services/imaged/platform/tar-extract.ts";
import { rawTar, sha256 } from "../helpers/test-images.ts";

const work = mkdtempSync(join(tmpdir(), "arcbox-layer-image-"));
const mounted: string[] = [];
afterAll(async () => {
  for (const m of mounted.reverse()) await unmount(m).catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

async function* chunks(data: Uint8Array, size = 777): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

let seq = 0;
/** Builds and mounts a layer image; returns its mount point and the filter's result. */
async function build(tar: Uint8Array) {
  const image = join(work, `img-${++seq}`);
  const f = overlayTarFilter(chunks(tar));
  await buildSquashfs(f.output, image);
  const target = join(work, `mnt-${seq}`);
  mkdirSync(target);
  await mountSquashfs(image, target);
  mounted.push(target);
  return { target, result: await f.result };
}

test("entries, owners, modes, links, devices, xattrs survive; diff ID is the input's sha256", async () => {
  const tar = rawTar([
    { name: "./", type: "5", mode: 0o755 },
    { name: "etc/", type: "5", mode: 0o750, uid: 5, gid: 6, mtime: 1_600_000_000 },
    { name: "etc/f", data: "hello", mode: 0o4755, uid: 7, gid: 8 },
    { name: "etc/hl", type: "1", linkname: "etc/f" },
    { name: "etc/sl", type: "2", linkname: "../x" },
    { name: "dev/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
    { name: "fifo", type: "6", mode: 0o600 },
    { name: "cap", data: "x", pax: { "SCHILY.xattr.user.k": "v" } },
    { name: "long", data: "long", pax: { path: `${"d".repeat(120)}/${"n".repeat(120)}` } },
  ]);
  const { target, result } = await build(tar);
  expect(result.diffId).toBe(sha256(tar));
  const etc = statSync(join(target, "etc"));
  expect([etc.mode & 0o7777, etc.uid, etc.gid, etc.mtimeMs / 1000]).toEqual([0o750, 5, 6, 1_600_000_000]);
  const f = statSync(join(target, "etc/f"));
  expect([f.mode & 0o7777, f.uid, f.gid, f.nlink]).toEqual([0o4755, 7, 8, 2]);
  expect(statSync(join(target, "etc/hl")).ino).toBe(f.ino);
  expect(readlinkSync(join(target, "etc/sl"))).toBe("../x");
  expect(lstatSync(join(target, "dev/null")).rdev).toBe(0x103);
  expect(lstatSync(join(target, "fifo")).isFIFO()).toBe(true);
  expect(new TextDecoder().decode(lgetxattr(join(target, "cap"), "user.k")!)).toBe("v");
  expect(readFileSync(join(target, `${"d".repeat(120)}/${"n".repeat(120)}`), "utf8")).toBe("long");
  expect(statSync(target).mode & 0o777).toBe(0o755);
});

test("whiteouts and opaque dirs work through a real overlay mount", async () => {
  const lower = await build(
    rawTar([
      { name: "etc/", type: "5" },
      { name: "etc/motd", data: "m" },
      { name: "etc/keep", data: "k" },
      { name: "cache/", type: "5" },
      { name: "cache/a", data: "a" },
      { name: "lone/", type: "5" },
      { name: "lone/b", data: "b" },
    ]),
  );
  const upper = await build(
    rawTar([
      { name: "etc/.wh.motd" },
      { name: "cache/", type: "5" },
      { name: "cache/.wh..wh..opq" },
      { name: "cache/c", data: "c" },
      // An opaque marker whose directory has no entry of its own.
      { name: "lone/.wh..wh..opq" },
    ]),
  );
  expect(lstatSync(join(upper.target, "etc/motd")).rdev).toBe(0);
  expect(lstatSync(join(upper.target, "etc/motd")).isCharacterDevice()).toBe(true);
  expect(new TextDecoder().decode(lgetxattr(join(upper.target, "cache"), "trusted.overlay.opaque")!)).toBe("y");
  const merged = join(work, "merged");
  mkdirSync(merged);
  const r = Bun.spawnSync(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${upper.target}:${lower.target}`, merged], { stderr: "pipe" });
  expect(r.stderr.toString()).toBe("");
  mounted.push(merged);
  expect(readdirSync(join(merged, "etc"))).toEqual(["keep"]);
  expect(readdirSync(join(merged, "cache"))).toEqual(["c"]);
  expect(readdirSync(join(merged, "lone"))).toEqual([]);
  expect(mountedUnder(work).has(merged)).toBe(true);
});

for (const [what, entries] of [
  ["a ../ path", [{ name: "../escape", data: "x" }]],
  ["a nested ../ path", [{ name: "a/../../escape", data: "x" }]],
  ["an absolute path", [{ name: "/tmp/arcbox-abs-escape", data: "x" }]],
  [
    "a write through a symlink to outside",
    [
      { name: "evil", type: "2", linkname: "/tmp" },
      { name: "evil/arcbox-through-link", data: "x" },
    ],
  ],
  ["a hard link to outside", [{ name: "h", type: "1", linkname: "../../etc/passwd" }]],
  [
    "a hard link through a symlink",
    [
      { name: "up", type: "2", linkname: "/" },
      { name: "h", type: "1", linkname: "up/etc/passwd" },
    ],
  ],
] as const) {
  test(`rejects ${what}`, async () => {
    const image = join(work, `bad-${++seq}`);
    const f = overlayTarFilter(chunks(rawTar(entries as never)));
    const err = await buildSquashfs(f.output, image).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/escapes|absolute|symlink/);
  });
}

test("a truncated or corrupt tar is an error", async () => {
  const tar = rawTar([{ name: "big", data: "z".repeat(10_000) }]);
  const cut = await buildSquashfs(overlayTarFilter(chunks(tar.subarray(0, 3000))).output, join(work, "cut")).catch((e) => e);
  expect(String(cut.message)).toContain("truncated");
  const corrupt = new Uint8Array(tar);
  corrupt[10] = 0x41;
  const bad = await buildSquashfs(overlayTarFilter(chunks(corrupt)).output, join(work, "corrupt")).catch((e) => e);
  expect(String(bad.message)).toContain("checksum");
});

for (const [what, entries] of [
  [
    "a path listed twice",
    [
      { name: "f", data: "old" },
      { name: "f", data: "new" },
    ],
  ],
  ["an opaque marker after other entries", [{ name: "d/", type: "5" }, { name: "d/x", data: "x" }, { name: "d/.wh..wh..opq" }]],
  [
    "a directory after its children",
    [
      { name: "d/x", data: "x" },
      { name: "d/", type: "5", mode: 0o700 },
    ],
  ],
] as const) {
  test(`${what}: asks to be unpacked, and unpacking gives tar's result`, async () => {
    const tar = rawTar(entries as never);
    const err = await buildSquashfs(overlayTarFilter(chunks(tar)).output, join(work, `dup-${++seq}`)).catch((e) => e);
    expect(err).toBeInstanceOf(NeedsUnpack);
    const root = join(work, `unpacked-${seq}`);
    mkdirSync(root);
    await extractTar(chunks(tar), root);
    if (existsSync(join(root, "f"))) expect(readFileSync(join(root, "f"), "utf8")).toBe("new");
  });
}
