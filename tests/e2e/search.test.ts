/**
 * `docker search` (GET /images/search): a registry's v1 search API, asked as dockerd
 * asks it, through the docker CLI and python3-docker. Debian's docker-registry
 * (distribution v2) has no search API, so it answers as it would to dockerd; a
 * small loopback server speaks Docker Hub's v1 search protocol for the results.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { run, TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";

const d = new TestDaemon("arcbox-search-");
let reg: TestRegistry;
let index: ReturnType<typeof Bun.serve>;
/** What the index was asked: the query string and the token header dockerd sends. */
const asked: { q: string | null; n: string | null; token: string | null }[] = [];

const REPOS = [
  { name: "web", description: "the official web server", star_count: 120, is_official: true, is_automated: false },
  { name: "someone/web-tools", description: "tools for the web", star_count: 4, is_official: false, is_automated: false },
  { name: "other/web", description: null, star_count: 0, is_official: false, is_automated: false },
];

beforeAll(async () => {
  reg = await startRegistry();
  index = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/v1/search") return new Response("not found", { status: 404 });
      const q = url.searchParams.get("q");
      const n = url.searchParams.get("n");
      asked.push({ q, n, token: req.headers.get("x-docker-token") });
      const results = REPOS.filter((r) => r.name.includes(q ?? "")).slice(0, Number(n));
      return Response.json({ num_results: results.length, query: q, results });
    },
  });
  await d.start();
}, 120_000);

afterAll(async () => {
  await d.dispose();
  index?.stop(true);
  await reg?.stop();
}, 60_000);

const indexHost = () => `127.0.0.1:${index.port}`;
const message = async (r: Response) => ((await r.json()) as { message: string }).message;

test("docker search lists what the registry's index finds, with dockerd's query", async () => {
  asked.length = 0;
  const r = await d.docker(["search", "--no-trunc", "--format", "{{.Name}}|{{.Description}}|{{.StarCount}}|{{.IsOfficial}}", `${indexHost()}/web`]);
  expect(r).toMatchObject({ code: 0, stderr: "" });
  expect(r.stdout.trim().split("\n")).toEqual(["web|the official web server|120|[OK]", "someone/web-tools|tools for the web|4|", "other/web||0|"]);
  // The host part names the registry; the rest is the query, 25 results by default.
  expect(asked).toEqual([{ q: "web", n: "25", token: "true" }]);
});

test("limit and filters: stars is a minimum, is-official must match", async () => {
  asked.length = 0;
  const limited = await d.docker(["search", "--limit", "2", "--format", "{{.Name}}", `${indexHost()}/web`]);
  expect(limited).toMatchObject({ code: 0, stdout: "web\nsomeone/web-tools\n" });
  expect(asked[0]!.n).toBe("2");
  const starred = await d.docker(["search", "--filter", "stars=3", "--format", "{{.Name}}", `${indexHost()}/web`]);
  expect(starred).toMatchObject({ code: 0, stdout: "web\nsomeone/web-tools\n" });
  const official = await d.docker(["search", "--filter", "is-official=true", "--format", "{{.Name}}", `${indexHost()}/web`]);
  expect(official).toMatchObject({ code: 0, stdout: "web\n" });
  const unofficial = await d.api(`/v1.50/images/search?term=${indexHost()}/web&filters=${encodeURIComponent('{"is-official":["false"],"stars":["1"]}')}`);
  expect(await unofficial.json()).toEqual([{ description: "tools for the web", is_official: false, is_automated: false, name: "someone/web-tools", star_count: 4 }]);
});

test("python3-docker's images.search", async () => {
  const py = `import docker, json; c = docker.DockerClient(base_url="${d.dockerHost}"); print(json.dumps([r["name"] for r in c.images.search("${indexHost()}/tools")]))`;
  const r = await run(["python3", "-c", py]);
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout)).toEqual(["someone/web-tools"]);
});

test("a registry without the search API, and one that does not answer: dockerd's 500s", async () => {
  // distribution v2 has no /v1/search: dockerd reports the registry's status.
  const plain = await d.docker(["search", `${reg.host}/anything`]);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toContain("Unexpected status code 404");
  const r = await d.api(`/v1.50/images/search?term=${reg.host}/anything`);
  expect(r.status).toBe(500);
  // Nothing listens on port 1.
  const down = await d.api("/v1.50/images/search?term=127.0.0.1:1/x");
  expect(down.status).toBe(500);
  expect(await message(down)).toStartWith('Get "https://127.0.0.1:1/v1/search?q=x&n=25": ');
});

test("bad input is a 400 before any registry is asked", async () => {
  asked.length = 0;
  for (const [query, why] of [
    [`term=${indexHost()}/web&limit=101`, "limit 101 is outside the range of [1, 100]"],
    [`term=${indexHost()}/web&limit=-1`, "invalid limit specified: -1"],
    [`term=${indexHost()}/web&filters=${encodeURIComponent('{"stars":["many"]}')}`, "invalid filter 'stars=many'"],
    [`term=${indexHost()}/web&filters=${encodeURIComponent('{"color":["red"]}')}`, "invalid filter 'color'"],
    [`term=${encodeURIComponent(`https://${indexHost()}/web`)}`, `invalid repository name: repository name (https://${indexHost()}/web) should not have a scheme`],
    [`term=${encodeURIComponent("me@evil.example/web")}`, 'invalid registry name "me@evil.example" in search term "me@evil.example/web"'],
  ] as const) {
    const r = await d.api(`/v1.50/images/search?${query}`);
    expect({ query, status: r.status, message: await message(r) }).toEqual({ query, status: 400, message: why });
  }
  expect(asked).toEqual([]);
});
