/** Query-string parsing shared by the image routes (Docker's `filters` JSON, booleans). */
import { create } from "@bufbuild/protobuf";
import { FilterSchema, type Filter } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import { parseFilters } from "../filters.ts";

/** Docker's `filters` as imaged's Filter list; imaged validates the keys. */
export function imageFilters(raw: string | undefined): Filter[] {
  return [...parseFilters(raw)].map(([key, values]) => create(FilterSchema, { key, values }));
}

export function queryBool(v: string | undefined): boolean {
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}
