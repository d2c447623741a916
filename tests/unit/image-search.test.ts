/** docker search's term splitting (imaged) and dockerd's result filtering (apid). */
import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { SearchResultSchema } from "../../proto/gen/arcbox/images/v1/images_pb.ts";
import { parseSearchQuery, searchResultsJson } from "../../services/apid/docker/images/search.ts";
import { HUB_INDEX, splitSearchTerm } from "../../services/imaged/core/search.ts";

test("a term names a registry only when its first part looks like a host; Docker Hub's names are the index", () => {
  expect(splitSearchTerm("nginx")).toEqual({ index: HUB_INDEX, remote: "nginx" });
  expect(splitSearchTerm("someone/tool")).toEqual({ index: HUB_INDEX, remote: "someone/tool" });
  expect(splitSearchTerm("localhost/app")).toEqual({ index: "localhost", remote: "app" });
  expect(splitSearchTerm("reg.example:5000/team/app")).toEqual({ index: "reg.example:5000", remote: "team/app" });
  for (const hub of ["docker.io", "index.docker.io", "registry-1.docker.io"]) expect(splitSearchTerm(`${hub}/library/nginx`)).toEqual({ index: HUB_INDEX, remote: "library/nginx" });
});

test("filters as dockerd 25+ applies them: is_automated is always false, is-automated=true matches nothing", () => {
  const results = [create(SearchResultSchema, { name: "a", starCount: 10n, isOfficial: true, isAutomated: true }), create(SearchResultSchema, { name: "b", starCount: 2n })];
  const names = (filters: string) => searchResultsJson(results, parseSearchQuery({ term: "x", filters }).filters).map((r) => r.name);
  expect(searchResultsJson(results, {}).map((r) => r.is_automated)).toEqual([false, false]);
  expect(names('{"is-automated":["true"]}')).toEqual([]);
  expect(names('{"is-automated":["false"]}')).toEqual(["a", "b"]);
  expect(names('{"stars":["3","1"]}')).toEqual(["a"]);
  expect(names('{"is-official":["false"]}')).toEqual(["b"]);
});
