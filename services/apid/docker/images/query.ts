/** Query-string parsing shared by the image routes (Docker's `filters` JSON, booleans). */
import { z } from "zod";
import { create } from "@bufbuild/protobuf";
import { FilterSchema, type Filter } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import { ArcboxError } from "../../../../lib/errors.ts";

const filtersSchema = z.record(z.string(), z.union([z.array(z.string()), z.record(z.string(), z.boolean())]));

/** `{"key":{"v":true}}` (current) or `{"key":["v"]}` (legacy) -> Filter list. */
export function parseFilters(raw: string | undefined): Filter[] {
  if (!raw) return [];
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new ArcboxError("invalid_argument", "invalid filter: filters must be JSON");
  }
  const parsed = filtersSchema.safeParse(json);
  if (!parsed.success) throw new ArcboxError("invalid_argument", "invalid filter: unexpected filters format");
  return Object.entries(parsed.data).map(([key, v]) => create(FilterSchema, { key, values: Array.isArray(v) ? v : Object.keys(v).filter((k) => v[k]) }));
}

export function queryBool(v: string | undefined): boolean {
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}
