/**
 * `docker search`: a registry's v1 search API, as dockerd asks it (moby's
 * registry/search.go). A term without a registry host searches Docker Hub's index; one
 * that starts with a host ("localhost:5000/app") searches that registry. Filters are
 * the caller's (apid applies them, as dockerd does after the registry answers).
 */
import { z } from "zod";
import { openRepo, type Credentials } from "../platform/registry-client.ts";
import { ImageError } from "./errors.ts";
import { isRegistryHost } from "./reference.ts";
import type { RegistryConfig } from "./registry-config.ts";

/** Docker Hub's search lives on the index, not on registry-1 (where images come from). */
export const HUB_INDEX = "index.docker.io";
export const DEFAULT_SEARCH_LIMIT = 25;
const HUB_NAMES = new Set(["docker.io", HUB_INDEX, "registry-1.docker.io"]);

export interface SearchResult {
  name: string;
  description: string;
  starCount: bigint;
  isOfficial: boolean;
  isAutomated: boolean;
}

/** The registry's answer, checked at the edge; missing fields read as Docker's zero values. */
const searchResultsSchema = z.object({
  results: z
    .array(
      z.object({
        name: z.string(),
        description: z.string().nullish(),
        star_count: z.number().int().nullish(),
        is_official: z.boolean().nullish(),
        is_automated: z.boolean().nullish(),
      }),
    )
    .nullish(),
});

/** moby's splitReposSearchTerm: the first part is a registry only if it looks like a host. */
export function splitSearchTerm(term: string): { index: string; remote: string } {
  const slash = term.indexOf("/");
  if (slash < 0) return { index: HUB_INDEX, remote: term };
  const first = term.slice(0, slash);
  if (!first.includes(".") && !first.includes(":") && first !== "localhost") return { index: HUB_INDEX, remote: term };
  // Docker Hub's other names are Docker Hub too (moby's normalizeIndexName).
  return { index: HUB_NAMES.has(first) ? HUB_INDEX : first, remote: term.slice(slash + 1) };
}

export async function searchRegistry(cfg: RegistryConfig, term: string, limit: number, creds: Credentials | undefined): Promise<SearchResult[]> {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(term)) {
    throw new ImageError("invalid_argument", `invalid repository name: repository name (${term}) should not have a scheme`);
  }
  const n = limit === 0 ? DEFAULT_SEARCH_LIMIT : limit;
  if (n < 1 || n > 100) throw new ImageError("invalid_argument", `limit ${n} is outside the range of [1, 100]`);
  const { index, remote } = splitSearchTerm(term);
  // The host goes into the request's URL: one that is not a host (user@, ?, #) is refused.
  if (!isRegistryHost(index)) throw new ImageError("invalid_argument", `invalid registry name ${JSON.stringify(index)} in search term ${JSON.stringify(term)}`);
  // Official images are stored as "foo", not "library/foo".
  const q = index === HUB_INDEX ? remote.replace(/^library\//, "") : remote;
  const path = `/v1/search?q=${encodeURIComponent(q)}&n=${n}`;
  // A token for a search is asked with the scope dockerd asks (registry:catalog:search).
  const repo = openRepo(cfg, index, "", creds, "search");
  let res: Response;
  try {
    res = await repo.request(path, { headers: { "X-Docker-Token": "true" } });
  } catch (err) {
    // The transport's own words (DNS, refused), not the pull-flavoured wrapper's.
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new ImageError("internal", `Get "https://${index}${path}": ${why}`, { cause: err });
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new ImageError("internal", `Unexpected status code ${res.status}`);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch (err) {
    throw new ImageError("internal", `error decoding registry search results: ${(err as Error).message}`, { cause: err });
  }
  const parsed = searchResultsSchema.safeParse(body);
  if (!parsed.success) throw new ImageError("internal", "error decoding registry search results: unexpected JSON");
  return (parsed.data.results ?? []).map((r) => ({
    name: r.name,
    description: r.description ?? "",
    starCount: BigInt(r.star_count ?? 0),
    isOfficial: r.is_official ?? false,
    isAutomated: r.is_automated ?? false,
  }));
}
