import { expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const repo = join(import.meta.dir, "..", "..");

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

test("proto/gen is what buf generates from proto/ (run ./scripts/gen-proto.sh when this fails)", () => {
  const out = mkdtempSync(join(tmpdir(), "arcbox-protogen-"));
  try {
    const template = join(out, "buf.gen.yaml");
    writeFileSync(
      template,
      `version: v2\ninputs:\n  - directory: ${join(repo, "proto")}\nplugins:\n  - local: ${join(repo, "node_modules/.bin/protoc-gen-es")}\n    out: ${join(out, "gen")}\n    opt:\n      - target=ts\n      - import_extension=ts\n`,
    );
    const p = Bun.spawnSync([join(repo, "node_modules/.bin/buf"), "generate", "--template", template], { cwd: repo });
    expect(p.stderr.toString()).toBe("");
    expect(p.exitCode).toBe(0);
    const fresh = listFiles(join(out, "gen")).map((f) => relative(join(out, "gen"), f));
    // *_codec.ts: scripts/gen-guest-codec.ts's static codecs, checked by guest-codec.test.ts.
    const committed = listFiles(join(repo, "proto", "gen"))
      .map((f) => relative(join(repo, "proto", "gen"), f))
      .filter((f) => !f.endsWith("_codec.ts"));
    expect(committed).toEqual(fresh);
    for (const f of fresh) expect(readFileSync(join(repo, "proto", "gen", f), "utf8")).toBe(readFileSync(join(out, "gen", f), "utf8"));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}, 60_000);
