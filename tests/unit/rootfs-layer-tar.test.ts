/**
 * The layer tar of an overlay upper dir made by native/bin/arcbox-rootfs-cp's `layer`
 * operation (docker commit in VM mode, run in the engine machine) lists the same
 * entries as imaged's diffTar (host mode): whiteouts as `.wh.NAME`, opaque directories
 * marked, links and hard links kept, relative names. Needs root (mknod, trusted xattrs).
 */
import { afterAll, expect, test } from "bun:test";
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { lsetxattr, mknod } from "../../native/fs-ops.ts";
import { diffTar } from "../../services/imaged/platform/tar-diff.ts";

const HELPER = join(import.meta.dir, "../../native/bin/arcbox-rootfs-cp");
const work = mkdtempSync(join(tmpdir(), "arcbox-layer-tar-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** `tar -tv`'s lines without dates (type, mode, owner, size, name, link). */
function listing(tar: Uint8Array): string[] {
  const p = Bun.spawnSync(["tar", "--numeric-owner", "-tvf", "-"], { stdin: tar });
  expect(p.exitCode).toBe(0);
  return p.stdout
    .toString()
    .trim()
    .split("\n")
    .map((l) => l.split(/\s+/))
    .map((f) => [f[0], f[1], f[2], ...f.slice(5)].join(" "));
}

test("the helper's layer tar lists what imaged's diffTar lists", async () => {
  const upper = join(work, "upper");
  mkdirSync(join(upper, "etc", "conf.d"), { recursive: true });
  mkdirSync(join(upper, "opaque"), { recursive: true });
  writeFileSync(join(upper, "etc", "conf.d", "a.conf"), "a=1\n");
  writeFileSync(join(upper, "opaque", "new"), "n\n");
  writeFileSync(join(upper, "hard1"), "same\n");
  linkSync(join(upper, "hard1"), join(upper, "hard2"));
  symlinkSync("/etc/conf.d", join(upper, "link"));
  mknod(join(upper, "etc", "removed"), 0o20000, 0, 0);
  lsetxattr(join(upper, "opaque"), "trusted.overlay.opaque", new TextEncoder().encode("y"));

  const host: Uint8Array[] = [];
  for await (const chunk of diffTar(upper)) host.push(chunk);
  const p = Bun.spawnSync([HELPER, "layer", upper]);
  expect(p.exitCode).toBe(0);
  const out = p.stdout;
  const nl = out.indexOf(10);
  expect(out.subarray(0, nl).toString()).toBe('{"ok":true}');
  const vm = listing(new Uint8Array(out.subarray(nl + 1)));
  // diffTar names directories without the trailing slash GNU tar prints for ours.
  const expected = listing(Buffer.concat(host)).map((l) => (l.startsWith("d") && !l.endsWith("/") ? `${l}/` : l));
  expect(vm).toEqual(expected);
  expect(vm.some((l) => l.endsWith(" etc/.wh.removed"))).toBe(true);
  expect(vm.some((l) => l.endsWith(" opaque/.wh..wh..opq"))).toBe(true);
});
