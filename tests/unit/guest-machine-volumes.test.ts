/**
 * The engine machine's volume operations (guest/vm/machine-volumes.ts) stay below their
 * root: a name that is not a volume name is refused before anything is touched.
 */
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runVolumeOp } from "../../guest/vm/machine-volumes.ts";

const base = mkdtempSync(join(tmpdir(), "arcbox-mvol-"));
const root = join(base, "volumes");
afterAll(() => rmSync(base, { recursive: true, force: true }));

const op = (o: string, names: string[]) => runVolumeOp({ op: o, names, lowerDirs: [], target: "" }, root);

test("prepare makes the data dir, sizes measure it, remove deletes it", async () => {
  expect((await op("prepare", ["v1"])).path).toBe(join(root, "v1", "_data"));
  writeFileSync(join(root, "v1", "_data", "f"), "12345");
  expect((await op("sizes", ["v1", "missing"])).sizes).toEqual([5n, -1n]);
  await op("remove", ["v1"]);
  expect(existsSync(join(root, "v1"))).toBe(false);
});

test("names that would leave the volume root are refused", async () => {
  mkdirSync(join(base, "victim"), { recursive: true });
  for (const name of ["..", "../victim", "a/b", ".hidden", "/abs", ""]) {
    for (const o of ["prepare", "remove", "sizes"]) await expect(op(o, [name])).rejects.toThrow("is not a volume name");
  }
  expect(existsSync(join(base, "victim"))).toBe(true);
  await expect(op("chmod", ["v1"])).rejects.toThrow("unknown volume op");
  await expect(op("remove", ["a1", "a2"])).rejects.toThrow("takes one name");
});
