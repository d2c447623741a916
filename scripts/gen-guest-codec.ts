/**
 * Generates a static protobuf codec for one .proto file from its protobuf-es descriptors:
 * an encoder, a decoder and a default constructor per message, and a per-method table
 * for each service. The guest agent uses it instead of protobuf-es's reflection
 * (`create`/`fromBinary`/`toBinary` over descriptors), whose descriptor set-up costs
 * ~1.2 s of the agent's start in a TCG guest without the JIT (guest/README.md, "Start-up
 * costs"). Messages keep protobuf-es's shape (`$typeName`, zero values, `0n` for 64-bit
 * integers, `{ case }` oneofs), so code typed with machines_pb.ts reads them unchanged;
 * the wire format is protobuf-es's byte for byte (tests/unit/guest-codec.test.ts).
 * Not supported (the generator fails): proto2 groups/delimited encoding and extensions.
 * Unknown fields are skipped when decoding, not kept.
 *
 * Usage: bun scripts/gen-guest-codec.ts (run by scripts/gen-proto.sh) writes
 * proto/gen/arcbox/machines/v1/machines_codec.ts.
 */
import { join } from "node:path";
import { type DescField, type DescFile, type DescMessage, ScalarType } from "@bufbuild/protobuf";

/** BinaryWriter/BinaryReader method and wire type of a scalar type. */
const SCALAR: Record<ScalarType, { method: string; wire: number; zero: string; is64?: true; packable: boolean }> = {
  [ScalarType.DOUBLE]: { method: "double", wire: 1, zero: "0", packable: true },
  [ScalarType.FLOAT]: { method: "float", wire: 5, zero: "0", packable: true },
  [ScalarType.INT64]: { method: "int64", wire: 0, zero: "0n", is64: true, packable: true },
  [ScalarType.UINT64]: { method: "uint64", wire: 0, zero: "0n", is64: true, packable: true },
  [ScalarType.INT32]: { method: "int32", wire: 0, zero: "0", packable: true },
  [ScalarType.FIXED64]: { method: "fixed64", wire: 1, zero: "0n", is64: true, packable: true },
  [ScalarType.FIXED32]: { method: "fixed32", wire: 5, zero: "0", packable: true },
  [ScalarType.BOOL]: { method: "bool", wire: 0, zero: "false", packable: true },
  [ScalarType.STRING]: { method: "string", wire: 2, zero: '""', packable: false },
  [ScalarType.BYTES]: { method: "bytes", wire: 2, zero: "new Uint8Array(0)", packable: false },
  [ScalarType.UINT32]: { method: "uint32", wire: 0, zero: "0", packable: true },
  [ScalarType.SFIXED32]: { method: "sfixed32", wire: 5, zero: "0", packable: true },
  [ScalarType.SFIXED64]: { method: "sfixed64", wire: 1, zero: "0n", is64: true, packable: true },
  [ScalarType.SINT32]: { method: "sint32", wire: 0, zero: "0", packable: true },
  [ScalarType.SINT64]: { method: "sint64", wire: 0, zero: "0n", is64: true, packable: true },
};

const IMPLICIT = 2; // FeatureSet.FieldPresence.IMPLICIT, as protobuf-es numbers it

/** The name protobuf-es gives a message's TypeScript type (nested: Outer_Inner). */
export function tsName(m: DescMessage): string {
  const pkg = m.file.proto.package;
  return (pkg ? m.typeName.slice(pkg.length + 1) : m.typeName).replaceAll(".", "_");
}

/** Every message of `file`, nested ones included, without map entries. */
export function allMessages(file: DescFile): DescMessage[] {
  const out: DescMessage[] = [];
  const walk = (m: DescMessage) => {
    if (m.proto.options?.mapEntry) return;
    out.push(m);
    m.nestedMessages.forEach(walk);
  };
  file.messages.forEach(walk);
  return out;
}

/** Read expression of one scalar value (64-bit as a string where the field asks). */
function readScalar(type: ScalarType, longAsString: boolean): string {
  const s = SCALAR[type];
  if (!s.is64) return `r.${s.method}()`;
  // BinaryReader gives a string only where BigInt is missing (never in Bun).
  return longAsString ? `String(r.${s.method}())` : `(r.${s.method}() as bigint)`;
}

function zeroOf(type: ScalarType, longAsString: boolean): string {
  const s = SCALAR[type];
  return s.is64 && longAsString ? '"0"' : s.zero;
}

/** Condition under which an implicit-presence scalar is written (not its zero value). */
function nonZero(type: ScalarType, v: string): string {
  switch (type) {
    case ScalarType.BOOL:
      return `${v} === true`;
    case ScalarType.STRING:
      return `${v} !== undefined && ${v} !== ""`;
    case ScalarType.BYTES:
      return `${v} !== undefined && ${v}.byteLength > 0`;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return `${v} !== undefined && !Object.is(${v}, 0)`;
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
    case ScalarType.SINT64:
      // 0n, 0 and "0" (an init may give any of them) are all zero.
      return `${v} !== undefined && Number(${v}) !== 0`;
    default:
      // Loose comparison: 0, 0n and "0" are all zero, as protobuf-es has it.
      return `${v} !== undefined && ${v} != 0`;
  }
}

function scalarTypeOf(f: DescField): ScalarType {
  if (f.fieldKind === "enum" || (f.fieldKind === "list" && f.listKind === "enum") || (f.fieldKind === "map" && f.mapKind === "enum")) return ScalarType.INT32;
  if (f.fieldKind === "scalar" || (f.fieldKind === "list" && f.listKind === "scalar") || (f.fieldKind === "map" && f.mapKind === "scalar")) return f.scalar;
  throw new Error(`${f}: not a scalar`);
}

function encodeField(f: DescField): string[] {
  const no = f.number;
  if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") || (f.fieldKind === "map" && f.mapKind === "message")) {
    if (f.fieldKind !== "map" && f.delimitedEncoding) throw new Error(`${f}: delimited (group) encoding is not supported`);
  }
  const writeValue = (v: string): string => {
    if (f.fieldKind === "message") return `w.tag(${no}, 2).fork(); encode${tsName(f.message)}(${v}, w); w.join();`;
    const s = SCALAR[scalarTypeOf(f)];
    return `w.tag(${no}, ${s.wire}).${s.method}(${v});`;
  };
  const v = `m.${f.localName}`;
  if (f.oneof) {
    return [`if (m.${f.oneof.localName}?.case === "${f.localName}") { const v = m.${f.oneof.localName}.value; ${writeValue("v")} }`];
  }
  switch (f.fieldKind) {
    case "message":
      return [`if (${v} !== undefined) { ${writeValue(v)} }`];
    case "scalar":
    case "enum": {
      if (f.presence !== IMPLICIT) return [`if (${v} !== undefined) { ${writeValue(v)} }`];
      if (f.fieldKind === "enum") return [`if (${v} !== undefined && ${v} !== ${f.enum.values[0]!.number}) { ${writeValue(v)} }`];
      return [`if (${nonZero(f.scalar, v)}) { ${writeValue(v)} }`];
    }
    case "list": {
      if (f.listKind === "message") return [`if (${v} !== undefined) for (const x of ${v}) { w.tag(${no}, 2).fork(); encode${tsName(f.message)}(x, w); w.join(); }`];
      const s = SCALAR[scalarTypeOf(f)];
      if (f.packed) return [`if (${v} !== undefined && ${v}.length > 0) { w.tag(${no}, 2).fork(); for (const x of ${v}) w.${s.method}(x); w.join(); }`];
      return [`if (${v} !== undefined) for (const x of ${v}) w.tag(${no}, ${s.wire}).${s.method}(x);`];
    }
    case "map": {
      const k = SCALAR[f.mapKey];
      const key =
        f.mapKey === ScalarType.STRING
          ? "k"
          : f.mapKey === ScalarType.BOOL
            ? 'k === "true"'
            : k.is64
              ? "k" // BinaryWriter parses a 64-bit integer from its decimal string
              : "Number.parseInt(k, 10)";
      const value =
        f.mapKind === "message" ? `w.tag(2, 2).fork(); encode${tsName(f.message)}(${v}[k]!, w); w.join();` : `w.tag(2, ${SCALAR[scalarTypeOf(f)].wire}).${SCALAR[scalarTypeOf(f)].method}(${v}[k]!);`;
      return [`if (${v} !== undefined) for (const k of Object.keys(${v})) { w.tag(${no}, 2).fork(); w.tag(1, ${k.wire}).${k.method}(${key}); ${value} w.join(); }`];
    }
  }
}

function decodeField(f: DescField): string {
  const target = `m.${f.localName}`;
  const read = (): string => {
    if (f.fieldKind === "message") return `decode${tsName(f.message)}(r, end(r), ${f.oneof ? `m.${f.oneof.localName}.case === "${f.localName}" ? m.${f.oneof.localName}.value : undefined` : target})`;
    return readScalar(scalarTypeOf(f), "longAsString" in f && f.longAsString === true);
  };
  if (f.oneof) return `m.${f.oneof.localName} = { case: "${f.localName}", value: ${read()} };`;
  switch (f.fieldKind) {
    case "message":
    case "scalar":
    case "enum":
      return `${target} = ${read()};`;
    case "list": {
      if (f.listKind === "message") return `${target}.push(decode${tsName(f.message)}(r, end(r)));`;
      const t = scalarTypeOf(f);
      const one = readScalar(t, f.listKind === "scalar" && f.longAsString);
      if (!SCALAR[t].packable) return `${target}.push(${one});`;
      // Packed or not, whatever the field says: parsers must accept both.
      return `if (wt === 2) { const e = end(r); while (r.pos < e) ${target}.push(${one}); } else ${target}.push(${one});`;
    }
    case "map": {
      const keyRead = readScalar(f.mapKey, false);
      const keyZero = zeroOf(f.mapKey, false);
      const valRead = f.mapKind === "message" ? `decode${tsName(f.message)}(r, end(r))` : readScalar(scalarTypeOf(f), false);
      const valZero = f.mapKind === "message" ? `new${tsName(f.message)}()` : f.mapKind === "enum" ? String(f.enum.values[0]!.number) : zeroOf(f.scalar, false);
      return `{ const e = end(r); let k: string | number | bigint | boolean = ${keyZero}; let v: (typeof ${target})[string] | undefined; while (r.pos < e) { const [n, t] = r.tag(); if (n === 1) k = ${keyRead}; else if (n === 2) v = ${valRead}; else r.skip(t, n); } ${target}[String(k)] = v ?? ${valZero}; }`;
    }
  }
}

function wireTypesOf(f: DescField): number[] {
  if (f.fieldKind === "message" || f.fieldKind === "map") return [2];
  if (f.fieldKind === "list" && f.listKind === "message") return [2];
  const s = SCALAR[scalarTypeOf(f)];
  return f.fieldKind === "list" && s.packable ? [s.wire, 2] : [s.wire];
}

function defaultsOf(m: DescMessage): string[] {
  const out = [`$typeName: "${m.typeName}"`];
  for (const o of m.oneofs) if (!o.fields.every((f) => f.proto.proto3Optional)) out.push(`${o.localName}: { case: undefined }`);
  for (const f of m.fields) {
    if (f.oneof) continue;
    switch (f.fieldKind) {
      case "message":
        break; // unset: undefined
      case "list":
        out.push(`${f.localName}: []`);
        break;
      case "map":
        out.push(`${f.localName}: {}`);
        break;
      case "enum":
        if (f.presence === IMPLICIT) out.push(`${f.localName}: ${f.enum.values[0]!.number}`);
        break;
      case "scalar":
        if (f.presence === IMPLICIT) out.push(`${f.localName}: ${zeroOf(f.scalar, f.longAsString)}`);
        break;
    }
  }
  return out;
}

export function generateCodec(file: DescFile, pbModule: string): string {
  if (file.extensions.length > 0) throw new Error(`${file.name}: extensions are not supported`);
  const out: string[] = [
    `// @generated by scripts/gen-guest-codec.ts from ${file.name}.proto: do not edit.`,
    "// A static codec, wire-compatible with protobuf-es, for processes that cannot afford",
    "// protobuf-es's descriptor set-up at start (the guest agent under TCG).",
    "/* eslint-disable */",
    "",
    'import type { MessageInitShape } from "@bufbuild/protobuf";',
    'import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";',
    `import type * as pb from "${pbModule}";`,
    "",
    "/** Reads a length prefix; returns where the length-delimited value ends. */",
    "function end(r: BinaryReader): number {",
    "  const n = r.uint32();",
    "  return r.pos + n;",
    "}",
    "",
  ];
  const messages = allMessages(file);
  for (const m of messages) {
    const n = tsName(m);
    const fields = m.fields.concat().sort((a, b) => a.number - b.number);
    out.push(`export function new${n}(): pb.${n} {`, `  return { ${defaultsOf(m).join(", ")} } as pb.${n};`, "}", "");
    out.push(`export function encode${n}(m: MessageInitShape<typeof pb.${n}Schema>, w: BinaryWriter = new BinaryWriter()): BinaryWriter {`);
    if (fields.length === 0) out.push("  void m;");
    for (const f of fields) for (const line of encodeField(f)) out.push(`  ${line}`);
    out.push("  return w;", "}", "");
    out.push(`export function decode${n}(r: BinaryReader, until: number, into?: pb.${n}): pb.${n} {`, `  const m = into ?? new${n}();`, "  while (r.pos < until) {", "    const [no, wt] = r.tag();");
    if (fields.length > 0) {
      out.push("    switch (no) {");
      for (const f of fields) {
        const wires = wireTypesOf(f);
        out.push(`      case ${f.number}:`, `        if (${wires.map((w) => `wt !== ${w}`).join(" && ")}) r.skip(wt, no);`, `        else ${decodeField(f)}`, "        break;");
      }
      out.push("      default:", "        r.skip(wt, no);", "    }");
    } else {
      out.push("    r.skip(wt, no);");
    }
    out.push("  }", "  return m;", "}", "");
    out.push(
      `export const ${n}Codec = {`,
      `  encode: (m: MessageInitShape<typeof pb.${n}Schema>): Uint8Array => encode${n}(m).finish(),`,
      `  decode: (bytes: Uint8Array): pb.${n} => decode${n}(new BinaryReader(bytes), bytes.byteLength),`,
      "};",
      "",
    );
  }
  for (const s of file.services) {
    out.push(`/** ${s.typeName}: each method's request and response codecs, by local name. */`, `export const ${s.name}Codec = {`);
    for (const meth of s.methods) out.push(`  ${meth.localName}: { input: ${tsName(meth.input)}Codec, output: ${tsName(meth.output)}Codec },`);
    out.push("} as const;", "");
  }
  return out.join("\n");
}

if (import.meta.main) {
  const { file_arcbox_machines_v1_machines } = await import("../proto/gen/arcbox/machines/v1/machines_pb.ts");
  const target = join(import.meta.dir, "..", "proto/gen/arcbox/machines/v1/machines_codec.ts");
  await Bun.write(target, generateCodec(file_arcbox_machines_v1_machines, "./machines_pb.ts"));
  console.log(`wrote ${target}`);
}
