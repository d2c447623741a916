/**
 * The guest agent's static protobuf codec (scripts/gen-guest-codec.ts) against protobuf-es:
 * every message of machines.proto, filled with non-default values in every field, encodes
 * to protobuf-es's bytes and decodes to protobuf-es's message, both ways; defaults match
 * `create`; and a synthetic file covers what machines.proto does not use (enums, oneofs,
 * every scalar type, packed lists, non-string map keys).
 */
import { expect, test } from "bun:test";
import { create, createFileRegistry, type DescField, type DescFile, type DescMessage, fromBinary, ScalarType, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as T, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as codec from "../../proto/gen/arcbox/machines/v1/machines_codec.ts";
import { CreateContainerRequestSchema, file_arcbox_machines_v1_machines, MachineService } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { allMessages, generateCodec, tsName } from "../../scripts/gen-guest-codec.ts";

const repo = join(import.meta.dir, "..", "..");

type Codec = { encode: (m: never) => Uint8Array; decode: (b: Uint8Array) => unknown };
type Value = unknown;

/** A value unlike the default for one scalar type (varied by `i`: list items differ). */
function scalarValue(t: ScalarType, i: number, long = false): Value {
  switch (t) {
    case ScalarType.STRING:
      return `s${i}-é✓`;
    case ScalarType.BYTES:
      return new Uint8Array([1, 2, 255, i]);
    case ScalarType.BOOL:
      return true;
    case ScalarType.DOUBLE:
      return -1.5 - i;
    case ScalarType.FLOAT:
      return 2.5 + i;
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return -123456 - i;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return 4000000000 + i;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return long ? String(-(2n ** 50n) - BigInt(i)) : -(2n ** 50n) - BigInt(i);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return long ? String(2n ** 63n + BigInt(i)) : 2n ** 63n + BigInt(i);
  }
}

function mapKey(t: ScalarType, i: number): string {
  if (t === ScalarType.STRING) return `k${i}`;
  if (t === ScalarType.BOOL) return i === 0 ? "true" : "false";
  return String(scalarValue(t, i));
}

/** An init object with every field set to a non-default value (nested to `depth`). */
function fill(m: DescMessage, depth = 3): Record<string, Value> {
  const out: Record<string, Value> = {};
  const setOneofs = new Set<string>();
  for (const f of m.fields) {
    if (f.oneof) {
      // One member per oneof: the last one, so a message member is covered where there is one.
      const last = f.oneof.fields.at(-1)!;
      if (f !== last || setOneofs.has(f.oneof.localName)) continue;
      setOneofs.add(f.oneof.localName);
      out[f.oneof.localName] = { case: f.localName, value: singular(f, 0, depth) };
      continue;
    }
    out[f.localName] = fieldValue(f, depth);
  }
  return out;
}

function singular(f: DescField, i: number, depth: number): Value {
  if (f.message) return depth > 0 ? fill(f.message, depth - 1) : {};
  if (f.enum) return f.enum.values.at(-1)!.number;
  if (f.fieldKind === "scalar" || f.fieldKind === "list") return scalarValue(f.scalar!, i, f.longAsString);
  return scalarValue(f.scalar!, i);
}

function fieldValue(f: DescField, depth: number): Value {
  switch (f.fieldKind) {
    case "list":
      return [singular(f, 0, depth), singular(f, 1, depth)];
    case "map":
      return Object.fromEntries([0, 1].map((i) => [mapKey(f.mapKey, i), singular(f, i, depth)]));
    default:
      return singular(f, 0, depth);
  }
}

/** Both ways, byte for byte and message for message, with every field set and unset. */
function checkRoundTrips(file: DescFile, gen: Record<string, unknown>): number {
  let checked = 0;
  for (const m of allMessages(file)) {
    const c = gen[`${tsName(m)}Codec`] as Codec;
    const newDefault = gen[`new${tsName(m)}`] as () => unknown;
    expect(c, m.typeName).toBeDefined();
    const full = create(m, fill(m));
    const pbBytes = toBinary(m, full);
    if (m.fields.length > 0) expect(pbBytes.byteLength, m.typeName).toBeGreaterThan(0);
    // Generated encoder, protobuf-es decoder (from the init object, as the agent's handlers return them).
    const genBytes = c.encode(fill(m) as never);
    expect(genBytes, m.typeName).toEqual(pbBytes);
    expect(fromBinary(m, genBytes), m.typeName).toEqual(full);
    // protobuf-es encoder, generated decoder.
    expect(c.decode(pbBytes), m.typeName).toEqual(full);
    expect(c.decode(pbBytes), m.typeName).toEqual(fromBinary(m, pbBytes));
    // Defaults: an empty message, and the generated constructor.
    expect(c.decode(new Uint8Array(0)), m.typeName).toStrictEqual(create(m));
    expect(newDefault(), m.typeName).toStrictEqual(create(m));
    expect(c.encode(create(m) as never), m.typeName).toEqual(new Uint8Array(0));
    checked++;
  }
  return checked;
}

test("the committed machines codec is what the generator makes (run scripts/gen-proto.sh when this fails)", () => {
  const committed = readFileSync(join(repo, "proto/gen/arcbox/machines/v1/machines_codec.ts"), "utf8");
  expect(committed).toBe(generateCodec(file_arcbox_machines_v1_machines, "./machines_pb.ts"));
});

test("every machines.proto message round-trips between the static codec and protobuf-es", () => {
  const n = checkRoundTrips(file_arcbox_machines_v1_machines, codec as Record<string, unknown>);
  expect(n).toBe(allMessages(file_arcbox_machines_v1_machines).length);
  expect(n).toBeGreaterThan(50);
});

test("the service table has each MachineService method's request and response codecs", () => {
  const table = codec.MachineServiceCodec as Record<string, { input: Codec; output: Codec }>;
  expect(Object.keys(table).sort()).toEqual(Object.keys(MachineService.method).sort());
  for (const [name, meth] of Object.entries(MachineService.method)) {
    const entry = table[name]!;
    expect(entry.input).toBe((codec as Record<string, unknown>)[`${tsName(meth.input)}Codec`] as Codec);
    expect(entry.output).toBe((codec as Record<string, unknown>)[`${tsName(meth.output)}Codec`] as Codec);
  }
});

test("decoding keeps what a merge needs: unknown fields skipped, message fields merged, optional zero kept", () => {
  const w = new BinaryWriter();
  w.tag(99, 2).string("unknown field"); // skipped
  w.tag(2, 2).string("id-1");
  w.tag(3, 2).fork().tag(1, 2).string("lower-a").join(); // rootfs, part 1
  w.tag(3, 2).fork().tag(2, 2).string("upper").join(); // rootfs, part 2: merged into part 1
  w.tag(24, 0).int64(0); // proto3 optional set to zero: present
  const bytes = w.finish();
  const mine = codec.CreateContainerRequestCodec.decode(bytes);
  expect(mine).toEqual(fromBinary(CreateContainerRequestSchema, bytes, { readUnknownFields: false }));
  expect(mine.rootfs?.lowerDirs).toEqual(["lower-a"]);
  expect(mine.rootfs?.upperDir).toBe("upper");
  expect(mine.memorySwappiness).toBe(0n);
});

/** A proto3 file with what machines.proto lacks, built as a descriptor (no protoc needed). */
function syntheticFile(): DescFile {
  const scalarFields = [
    ["f_double", T.DOUBLE],
    ["f_float", T.FLOAT],
    ["f_int64", T.INT64],
    ["f_uint64", T.UINT64],
    ["f_int32", T.INT32],
    ["f_fixed64", T.FIXED64],
    ["f_fixed32", T.FIXED32],
    ["f_bool", T.BOOL],
    ["f_string", T.STRING],
    ["f_bytes", T.BYTES],
    ["f_uint32", T.UINT32],
    ["f_sfixed32", T.SFIXED32],
    ["f_sfixed64", T.SFIXED64],
    ["f_sint32", T.SINT32],
    ["f_sint64", T.SINT64],
  ] as const;
  const fields: Record<string, unknown>[] = [];
  let no = 1;
  for (const [name, type] of scalarFields) fields.push({ name, number: no++, type, label: Label.OPTIONAL, jsonName: name });
  for (const [name, type] of scalarFields) fields.push({ name: `r_${name}`, number: no++, type, label: Label.REPEATED, jsonName: `r_${name}` });
  fields.push({ name: "f_long_str", number: no++, type: T.INT64, label: Label.OPTIONAL, options: { jstype: 1 } });
  fields.push({ name: "f_enum", number: no++, type: T.ENUM, typeName: ".t.Color", label: Label.OPTIONAL });
  fields.push({ name: "r_enum", number: no++, type: T.ENUM, typeName: ".t.Color", label: Label.REPEATED });
  fields.push({ name: "f_child", number: no++, type: T.MESSAGE, typeName: ".t.Child", label: Label.OPTIONAL });
  fields.push({ name: "r_child", number: no++, type: T.MESSAGE, typeName: ".t.Child", label: Label.REPEATED });
  fields.push({ name: "o_text", number: no++, type: T.STRING, label: Label.OPTIONAL, oneofIndex: 0 });
  fields.push({ name: "o_child", number: no++, type: T.MESSAGE, typeName: ".t.Child", label: Label.OPTIONAL, oneofIndex: 0 });
  fields.push({ name: "opt_int", number: no++, type: T.INT32, label: Label.OPTIONAL, oneofIndex: 1, proto3Optional: true });
  fields.push({ name: "opt_str", number: no++, type: T.STRING, label: Label.OPTIONAL, oneofIndex: 2, proto3Optional: true });
  const maps: [string, T, T, string?][] = [
    ["m_int64_child", T.INT64, T.MESSAGE, ".t.Child"],
    ["m_bool_enum", T.BOOL, T.ENUM, ".t.Color"],
    ["m_int32_bytes", T.INT32, T.BYTES],
    ["m_uint64_sint64", T.UINT64, T.SINT64],
    ["m_string_double", T.STRING, T.DOUBLE],
  ];
  const nested: Record<string, unknown>[] = [];
  for (const [name, key, value, typeName] of maps) {
    const entry = name.replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase()).concat("Entry");
    nested.push({
      name: entry,
      field: [
        { name: "key", number: 1, type: key, label: Label.OPTIONAL },
        { name: "value", number: 2, type: value, typeName, label: Label.OPTIONAL },
      ],
      options: { mapEntry: true },
    });
    fields.push({ name, number: no++, type: T.MESSAGE, typeName: `.t.All.${entry}`, label: Label.REPEATED });
  }
  const fdp = create(FileDescriptorProtoSchema, {
    name: "t/all.proto",
    package: "t",
    syntax: "proto3",
    enumType: [
      {
        name: "Color",
        value: [
          { name: "COLOR_UNSPECIFIED", number: 0 },
          { name: "COLOR_RED", number: 1 },
          { name: "COLOR_BLUE", number: -2 },
        ],
      },
    ],
    messageType: [
      {
        name: "Child",
        field: [
          { name: "note", number: 1, type: T.STRING, label: Label.OPTIONAL },
          { name: "deep", number: 2, type: T.MESSAGE, typeName: ".t.Child", label: Label.OPTIONAL },
        ],
      },
      { name: "All", field: fields, nestedType: nested, oneofDecl: [{ name: "choice" }, { name: "_opt_int" }, { name: "_opt_str" }] },
      { name: "Empty" },
    ],
    service: [{ name: "TestService", method: [{ name: "Do", inputType: ".t.All", outputType: ".t.Empty" }] }],
  } as never);
  return createFileRegistry(fdp, () => undefined).getFile("t/all.proto")!;
}

test("enums, oneofs, every scalar type, packed lists and non-string map keys round-trip too", async () => {
  const file = syntheticFile();
  const all = file.messages.find((m) => m.name === "All")!;
  // The synthetic file has what it is meant to cover.
  expect(all.oneofs.map((o) => o.localName)).toEqual(["choice"]);
  expect(all.fields.filter((f) => f.fieldKind === "list" && f.packed).length).toBeGreaterThan(10);
  expect(all.fields.find((f) => f.localName === "fLongStr")).toMatchObject({ longAsString: true });
  const dir = mkdtempSync(join(repo, "tests", "unit", ".codec-"));
  try {
    const path = join(dir, "all_codec.ts");
    writeFileSync(path, generateCodec(file, "./all_pb.ts"));
    const gen = (await import(path)) as Record<string, unknown>;
    expect(checkRoundTrips(file, gen)).toBe(3);
    // The oneof's other member, and an unpacked encoding of a packed list.
    const c = gen.AllCodec as Codec;
    const text = create(all, { choice: { case: "oText", value: "picked" } } as never);
    expect(c.decode(toBinary(all, text))).toEqual(text);
    const w = new BinaryWriter();
    const rInt32 = all.fields.find((f) => f.localName === "rFInt32")!;
    w.tag(rInt32.number, 0).int32(5).tag(rInt32.number, 0).int32(-6);
    expect((c.decode(w.finish()) as { rFInt32: number[] }).rFInt32).toEqual([5, -6]);
    expect(Object.keys(gen.TestServiceCodec as object)).toEqual(["do"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
