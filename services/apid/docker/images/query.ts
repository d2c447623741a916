/** Query-string parsing shared by the image routes (Docker's `filters` JSON, booleans). */
import { create } from "@bufbuild/protobuf";
import type * as ImagesPb from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import type { Filter } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import { type FILTERS, parseFilters } from "../filters.ts";

/**
 * Docker's `filters` as imaged's Filter list, checked here first (keys and values, a
 * 400 before imaged lists or prunes anything) and passed on in one canonical form:
 * booleans as "true"/"false", until as Unix seconds.
 */
export function imageFilters(raw: string | undefined, spec: typeof FILTERS.imageList | typeof FILTERS.imagePrune): Filter[] {
  const parsed: Record<string, string[] | boolean | number | undefined> = parseFilters(raw, spec);
  // Loaded here, not at start: the first file descriptor a process builds costs ~3.5 MB
  // of heap (protobuf boots descriptor.proto), and an unused apid should not pay it.
  const { FilterSchema } = require("../../../../proto/gen/arcbox/images/v1/images_pb.ts") as typeof ImagesPb;
  return Object.entries(parsed).map(([key, v]) => {
    const values = typeof v === "boolean" ? [String(v)] : typeof v === "number" ? [String(Math.max(0, v))] : (v ?? []);
    return create(FilterSchema, { key, values });
  });
}

export function queryBool(v: string | undefined): boolean {
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}
