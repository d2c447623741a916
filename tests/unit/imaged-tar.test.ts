/**
 * Layer unpacking: overlayfs whiteouts and opaque dirs, links, devices, xattrs,
 * owners, modes and times, and refusal of entries that escape the layer root.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lgetxattr } from "../../native/fs-ops.ts";
import { extractTar } from "../../services/imaged/platform/tar-extract.ts";
import { rawTar, sha256, tarFiles } from "../helpers/test-images.ts";

const dirs: string[] = [];
function fresh(): string {
  const d = mkdtempSync(join(tmpdir(), "arcbox-tar-"));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Feeds the tar in small uneven chunks, as a network would. */
async function* chunks(data: Uint8Array, size = 777): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

test("files, dirs, symlinks, hard links, devices: content, owners, modes, times; diff ID is the tar's sha256", async () => {
  const tar = rawTar([
    { name: "etc/", type: "5", mode: 0o750, uid: 5, gid: 6, mtime: 1_600_000_000 },
    { name: "etc/conf", data: "x".repeat(5000), mode: 0o4755, uid: 1000, gid: 1001, mtime: 1_650_000_000 },
    { name: "etc/link", type: "2", linkname: "conf", uid: 7, gid: 8 },
    { name: "etc/hard", type: "1", linkname: "etc/conf" },
    { name: "dev/null", type: "3", devmajor: 1, devminor: 3, mode: 0o666 },
    { name: "dev/fifo", type: "6", mode: 0o600 },
    { name: "deep/a/b/c.txt", data: "implicit parents" },
  ]);
  const root = fresh();
  const res = await extractTar(chunks(tar), root);
  expect(res.diffId).toBe(sha256(tar));
  const conf = statSync(join(root, "etc/conf"));
  expect(readFileSync(join(root, "etc/conf"), "utf8")).toBe("x".repeat(5000));
  expect(conf.mode & 0o7777).toBe(0o4755);
  expect([conf.uid, conf.gid]).toEqual([1000, 1001]);
  expect(Math.floor(conf.mtimeMs / 1000)).toBe(1_650_000_000);
  expect(conf.nlink).toBe(2);
  expect(statSync(join(root, "etc/hard")).ino).toBe(conf.ino);
  const etc = statSync(join(root, "etc"));
  expect([etc.mode & 0o7777, etc.uid, etc.gid, Math.floor(etc.mtimeMs / 1000)]).toEqual([0o750, 5, 6, 1_600_000_000]);
  expect(readlinkSync(join(root, "etc/link"))).toBe("conf");
  expect(lstatSync(join(root, "etc/link")).uid).toBe(7);
  const dev = statSync(join(root, "dev/null"));
  expect(dev.isCharacterDevice()).toBe(true);
  expect(dev.rdev).toBe(0x103);
  expect(statSync(join(root, "dev/fifo")).isFIFO()).toBe(true);
  expect(readFileSync(join(root, "deep/a/b/c.txt"), "utf8")).toBe("implicit parents");
});

test("whiteouts become 0:0 char devices and opaque markers become trusted.overlay.opaque", async () => {
  const root = fresh();
  await extractTar(chunks(rawTar([{ name: "etc/.wh.passwd" }, { name: "var/cache/.wh..wh..opq" }, { name: "var/cache/new", data: "n" }, { name: ".wh.tmp" }])), root);
  const wh = statSync(join(root, "etc/passwd"));
  expect(wh.isCharacterDevice()).toBe(true);
  expect(wh.rdev).toBe(0);
  expect(statSync(join(root, "tmp")).isCharacterDevice()).toBe(true);
  expect(existsSync(join(root, "etc/.wh.passwd"))).toBe(false);
  expect(new TextDecoder().decode(lgetxattr(join(root, "var/cache"), "trusted.overlay.opaque"))).toBe("y");
  expect(existsSync(join(root, "var/cache/.wh..wh..opq"))).toBe(false);
  expect(readFileSync(join(root, "var/cache/new"), "utf8")).toBe("n");
});

test("PAX xattrs and long names are applied", async () => {
  const longName = `${"d".repeat(120)}/${"f".repeat(110)}`;
  const root = fresh();
  await extractTar(
    chunks(
      rawTar([
        { name: "bin/ping", data: "elf", pax: { "SCHILY.xattr.user.arcbox": "yes", "SCHILY.xattr.trusted.arcbox": "t" } },
        { name: "short", pax: { path: longName }, data: "long" },
      ]),
    ),
    root,
  );
  expect(new TextDecoder().decode(lgetxattr(join(root, "bin/ping"), "user.arcbox"))).toBe("yes");
  expect(new TextDecoder().decode(lgetxattr(join(root, "bin/ping"), "trusted.arcbox"))).toBe("t");
  expect(readFileSync(join(root, longName), "utf8")).toBe("long");
});

test("GNU tar output (long names, xattrs) unpacks", async () => {
  const root = fresh();
  const name = `${"n".repeat(150)}.txt`;
  await extractTar(chunks(tarFiles({ [name]: "gnu", "sub/link": { symlink: "../x" }, exe: { content: "#!", mode: 0o700, uid: 33 } })), root);
  expect(readFileSync(join(root, name), "utf8")).toBe("gnu");
  expect(readlinkSync(join(root, "sub/link"))).toBe("../x");
  expect(statSync(join(root, "exe")).uid).toBe(33);
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
  [
    "a write through a relative symlink",
    [
      { name: "up", type: "2", linkname: ".." },
      { name: "up/escape", data: "x" },
    ],
  ],
  ["a hard link to outside", [{ name: "h", type: "1", linkname: "../../etc/passwd" }]],
] as const) {
  test(`rejects ${what} and writes nothing outside the root`, async () => {
    const parent = fresh();
    const root = join(parent, "root");
    require("node:fs").mkdirSync(root);
    const err = await extractTar(chunks(rawTar(entries as never)), root).catch((e) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err.message)).toMatch(/escapes|absolute|symlink/);
    expect(existsSync(join(parent, "escape"))).toBe(false);
    expect(existsSync("/tmp/arcbox-abs-escape")).toBe(false);
    expect(existsSync("/tmp/arcbox-through-link")).toBe(false);
  });
}

test("a truncated or corrupt tar is an error", async () => {
  const tar = rawTar([{ name: "big", data: "z".repeat(10_000) }]);
  const cut = await extractTar(chunks(tar.subarray(0, 3000)), fresh()).catch((e) => e);
  expect(String(cut.message)).toContain("truncated");
  const corrupt = new Uint8Array(tar);
  corrupt[10] = 0x41;
  const bad = await extractTar(chunks(corrupt), fresh()).catch((e) => e);
  expect(String(bad.message)).toContain("checksum");
});
