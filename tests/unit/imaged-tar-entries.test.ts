/**
 * The shared tar parser (services/imaged/platform/tar-entries.ts): logical entries with
 * PAX and GNU long names applied, data split at any chunk boundary, header-only types
 * that never carry data whatever their size field says, and truncation.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, linkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TarEntryParser } from "../../services/imaged/platform/tar-entries.ts";
import { rawTar } from "../helpers/test-images.ts";

interface Seen {
  name: string;
  type: string;
  linkname: string;
  data: string;
}

/** Parses `tar` fed in chunks of `size` bytes; returns the entries with their data. */
function parse(tar: Uint8Array, size: number): Seen[] {
  const p = new TarEntryParser("layer");
  const out: Seen[] = [];
  let cur: Seen | undefined;
  const dec = new TextDecoder();
  for (let i = 0; i < tar.length; i += size) {
    for (const ev of p.push(tar.subarray(i, i + size))) {
      if (ev.kind === "entry") cur = { name: ev.header.name, type: ev.header.type, linkname: ev.header.linkname, data: "" };
      else if (ev.kind === "data") cur!.data += dec.decode(ev.bytes);
      else {
        expect(ev.header.name).toBe(cur!.name);
        out.push(cur!);
        cur = undefined;
      }
    }
  }
  p.finish();
  expect(p.done).toBe(true);
  return out;
}

test("GNU and PAX archives from GNU tar: same entries at every chunk size", () => {
  const dir = mkdtempSync(join(tmpdir(), "arcbox-tar-entries-"));
  try {
    const long = `${"d".repeat(120)}/${"f".repeat(130)}`;
    mkdirSync(join(dir, "src", "d".repeat(120)), { recursive: true });
    writeFileSync(join(dir, "src", long), "long name body\n");
    writeFileSync(join(dir, "src", "small"), "x".repeat(1500));
    symlinkSync("l".repeat(150), join(dir, "src", "dangling"));
    linkSync(join(dir, "src", "small"), join(dir, "src", "hard"));
    for (const format of ["gnu", "pax"]) {
      const file = join(dir, `${format}.tar`);
      const r = Bun.spawnSync(["tar", `--format=${format}`, "--sort=name", "-C", join(dir, "src"), "-cf", file, "."]);
      expect(r.exitCode).toBe(0);
      const tar = new Uint8Array(readFileSync(file));
      const whole = parse(tar, tar.length);
      expect(whole.map((e) => e.name)).toEqual(["./", "./dangling", `./${"d".repeat(120)}/`, `./${long}`, "./hard", "./small"]);
      expect(whole.find((e) => e.name === `./${long}`)!.data).toBe("long name body\n");
      expect(whole.find((e) => e.name === "./dangling")!.linkname).toBe("l".repeat(150));
      // GNU tar stores the second name of a file as the hard link.
      expect(whole.find((e) => e.name === "./small")).toMatchObject({ type: "1", linkname: "./hard", data: "" });
      expect(whole.find((e) => e.name === "./hard")!.data).toBe("x".repeat(1500));
      for (const size of [1, 7, 511, 512, 513, 4096]) expect(parse(tar, size)).toEqual(whole);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a global PAX record applies to every later entry; a local one to the next only", () => {
  const tar = rawTar([
    { name: "a", data: "1", pax: { path: "renamed" } },
    { name: "b", data: "2" },
  ]);
  // Turn the first PAX header into a global one ("g"), fixing its checksum.
  const g = rawTar([{ name: "x", data: "", pax: { uid: "4242" } }]);
  g[156] = "g".charCodeAt(0);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : g[i]!;
  g.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  const globalOnly = g.subarray(0, 1024); // the "g" header and its record block
  const all = new Uint8Array(globalOnly.length + tar.length);
  all.set(globalOnly);
  all.set(tar, globalOnly.length);
  const p = new TarEntryParser("archive");
  const uids: Record<string, number> = {};
  for (const ev of p.push(all)) if (ev.kind === "entry") uids[ev.header.name] = ev.header.uid;
  p.finish();
  expect(uids).toEqual({ renamed: 4242, b: 4242 });
});

test("links, devices and directories carry no data even with a size field, as in Go's archive/tar", () => {
  const tar = rawTar([
    { name: "f", data: "body" },
    { name: "h", type: "1", linkname: "f" },
    { name: "after", data: "still parsed" },
  ]);
  // Give the hard link header a size of 5 (fixing its checksum): no data follows it.
  const h = tar.subarray(1024, 1536);
  h.set(new TextEncoder().encode("00000000005\0"), 124);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  h.set(new TextEncoder().encode(`${sum.toString(8).padStart(6, "0")}\0 `), 148);
  expect(parse(tar, 100).map((e) => [e.name, e.data])).toEqual([
    ["f", "body"],
    ["h", ""],
    ["after", "still parsed"],
  ]);
});

test("a stream cut inside an entry, a header or before the end marker is refused", () => {
  const tar = rawTar([{ name: "f", data: "x".repeat(2000) }]);
  for (const cut of [700, 1200, 2560 + 100]) {
    const p = new TarEntryParser("layer");
    for (const _ of p.push(tar.subarray(0, cut)));
    expect(() => p.finish()).toThrow(/truncated layer/);
  }
  // Entries complete but no end marker: a truncated stream that happens to end on a block.
  const p = new TarEntryParser("archive");
  for (const _ of p.push(tar.subarray(0, 2560)));
  expect(p.done).toBe(false);
  expect(() => p.finish()).not.toThrow();
});
