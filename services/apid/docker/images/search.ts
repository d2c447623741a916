/**
 * GET /images/search: the query checked here (limit, filters: a 400 before any registry
 * is asked), the registry's answer from imaged, then dockerd's filtering
 * (moby registry/search.go): is-official must match, stars is the highest "at least"
 * given, is-automated is deprecated (below).
 */
import type { SearchResult } from "../../../../proto/gen/arcbox/images/v1/images_pb.ts";
import { ArcboxError } from "../../../../lib/errors.ts";
import { FILTERS, type ParsedFilters, parseFilters } from "../filters.ts";

export type SearchFilters = ParsedFilters<typeof FILTERS.imageSearch>;

export interface SearchQuery {
  term: string;
  limit: number;
  filters: SearchFilters;
}

export function parseSearchQuery(q: Record<string, string | undefined>): SearchQuery {
  let limit = 0;
  if (q.limit !== undefined && q.limit !== "") {
    if (!/^\d{1,9}$/.test(q.limit)) throw new ArcboxError("invalid_argument", `invalid limit specified: ${q.limit}`);
    limit = Number(q.limit);
  }
  return { term: q.term ?? "", limit, filters: parseFilters(q.filters, FILTERS.imageSearch) };
}

/**
 * dockerd's filtering (Engine 25+): is_automated is deprecated and Docker Hub's value is
 * not trusted, so it is always false and `is-automated=true` matches nothing.
 */
export function searchResultsJson(results: SearchResult[], f: SearchFilters) {
  if (f["is-automated"] === true) return [];
  const minStars = f.stars?.length ? Math.max(...f.stars) : 0;
  return results
    .filter((r) => f["is-official"] === undefined || r.isOfficial === f["is-official"])
    .filter((r) => Number(r.starCount) >= minStars)
    .map((r) => ({ description: r.description, is_official: r.isOfficial, is_automated: false, name: r.name, star_count: Number(r.starCount) }));
}
