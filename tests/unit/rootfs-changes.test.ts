/**
 * `docker diff`'s walk of an upper dir against its layers (lib/rootfs-changes.ts), on
 * plain directories: no root, no overlay needed.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { upperChanges } from "../../lib/rootfs-changes.ts";

const root = mkdtempSync(join(tmpdir(), "rootfs-changes-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function layers(): { upper: string; lower: string } {
  const dir = mkdtempSync(join(root, "case-"));
  const upper = join(dir, "upper");
  const lower = join(dir, "lower");
  mkdirSync(upper);
  mkdirSync(lower);
  return { upper, lower };
}

test("a file the image had is changed, a new one added", () => {
  const { upper, lower } = layers();
  mkdirSync(join(lower, "etc"));
  writeFileSync(join(lower, "etc", "motd"), "old");
  mkdirSync(join(upper, "etc"));
  writeFileSync(join(upper, "etc", "motd"), "new");
  writeFileSync(join(upper, "etc", "fresh"), "");
  expect(upperChanges(upper, [lower])).toEqual([
    { Path: "/etc", Kind: 0 },
    { Path: "/etc/fresh", Kind: 1 },
    { Path: "/etc/motd", Kind: 0 },
  ]);
});

test("a symlink in a layer is never followed to decide changed or added", () => {
  const { upper, lower } = layers();
  // The image has `a -> /` and `b -> <a dir outside the layer holding x>`; the container
  // replaced both with directories holding files whose names exist at those targets.
  const outside = mkdtempSync(join(root, "outside-"));
  writeFileSync(join(outside, "x"), "");
  symlinkSync("/", join(lower, "a"));
  symlinkSync(outside, join(lower, "b"));
  mkdirSync(join(upper, "a"));
  mkdirSync(join(upper, "a", "etc"));
  mkdirSync(join(upper, "b"));
  writeFileSync(join(upper, "b", "x"), "");
  expect(upperChanges(upper, [lower])).toEqual([
    { Path: "/a", Kind: 0 },
    { Path: "/a/etc", Kind: 1 },
    { Path: "/b", Kind: 0 },
    { Path: "/b/x", Kind: 1 },
  ]);
});

test("a dangling link in the image counts as there", () => {
  const { upper, lower } = layers();
  symlinkSync("/nonexistent-target", join(lower, "l"));
  writeFileSync(join(upper, "l"), "now a file");
  expect(upperChanges(upper, [lower])).toEqual([{ Path: "/l", Kind: 0 }]);
});
