/**
 * POST /build/prune's query, checked as Docker checks it before anything is deleted:
 * the filters against their accepted keys, and the size parameters as byte counts.
 */
import { ArcboxError } from "../../../lib/errors.ts";
import { FILTERS, parseFilters } from "./filters.ts";

const SIZE_PARAMS = ["keep-storage", "reserved-space", "max-used-space", "min-free-space"];

export function checkBuildPruneQuery(query: (name: string) => string | undefined): void {
  const f = parseFilters(query("filters"), FILTERS.buildPrune);
  if (f.until !== undefined && f["unused-for"] !== undefined) throw new ArcboxError("invalid_argument", 'conflicting filters: "until" and "unused-for"');
  for (const p of SIZE_PARAMS) {
    const v = query(p);
    if (v !== undefined && v !== "" && !/^\d+$/.test(v)) throw new ArcboxError("invalid_argument", `${p} is in bytes and expects an integer, got "${v}"`);
  }
}
