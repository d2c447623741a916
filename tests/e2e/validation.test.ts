/**
 * Bad input never costs data: prune and list filters that do not parse are refused
 * before anything is touched. Raw API through TestDaemon.api, plus the real docker CLI.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import type { TestDaemon } from "../helpers/daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;
let danglingImage: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-valid-");
  d = fx.d;
  IMG = fx.image;
  // What a careless prune would take: stopped containers, a dangling image, an unused
  // network and unused volumes (named and anonymous).
  await ok(["create", "--name", "stopped-1", "--label", "team=a", "--network", "none", IMG, "true"]);
  await ok(["run", "--name", "stopped-2", "--network", "none", "-v", "/anon", IMG, "true"]);
  danglingImage = (await ok(["commit", "stopped-1"])).trim();
  await ok(["network", "create", "--label", "team=a", "unused-net"]);
  await ok(["volume", "create", "--label", "team=a", "unused-vol"]);
}, 180_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

async function ok(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function getJson(path: string): Promise<any> {
  const res = await d.api(path);
  expect(res.status).toBe(200);
  return res.json();
}

/** Everything a prune could remove, by ID. */
async function snapshot() {
  const [containers, images, networks, volumes] = await Promise.all([getJson("/containers/json?all=1"), getJson("/images/json?all=1"), getJson("/networks"), getJson("/volumes")]);
  return {
    containers: containers.map((c: any) => `${c.Id} ${c.State}`).sort(),
    images: images.map((i: any) => i.Id).sort(),
    networks: networks.map((n: any) => n.Id).sort(),
    volumes: volumes.Volumes.map((v: any) => v.Name).sort(),
  };
}

const q = (filters: string) => `filters=${encodeURIComponent(filters)}`;

describe("prune and list filters that do not parse change nothing", () => {
  const cases: { endpoint: string; method: "GET" | "POST"; filters: string; message: string }[] = [];
  const prunes = ["/containers/prune", "/images/prune", "/networks/prune", "/volumes/prune", "/build/prune"];
  const lists = ["/containers/json?all=1", "/images/json", "/networks", "/volumes", "/events?since=0&until=1"];
  for (const endpoint of prunes) {
    const hasUntil = endpoint !== "/volumes/prune";
    if (hasUntil) {
      cases.push({ endpoint, method: "POST", filters: '{"until":["bogus"]}', message: 'failed to parse value as time or duration: "bogus"' });
      cases.push({ endpoint, method: "POST", filters: '{"until":["2024-13-45"]}', message: "2024-13-45" });
      cases.push({ endpoint, method: "POST", filters: '{"until":["1h","2h"]}', message: "more than one until filter" });
    }
    cases.push({ endpoint, method: "POST", filters: '{"bogus":["1"]}', message: "invalid filter 'bogus'" });
    cases.push({ endpoint, method: "POST", filters: "{not json", message: "invalid filter" });
    cases.push({ endpoint, method: "POST", filters: '{"label":"team=a"}', message: "invalid filter" });
    cases.push({ endpoint, method: "POST", filters: '["label"]', message: "invalid filter" });
    cases.push({ endpoint, method: "POST", filters: '{"label":[1]}', message: "invalid filter" });
  }
  cases.push({ endpoint: "/images/prune", method: "POST", filters: '{"dangling":["maybe"]}', message: "invalid filter 'dangling=maybe'" });
  cases.push({ endpoint: "/images/prune", method: "POST", filters: '{"dangling":["true","false"]}', message: "invalid filter 'dangling=true,false'" });
  cases.push({ endpoint: "/volumes/prune", method: "POST", filters: '{"all":["yes"]}', message: "invalid filter 'all=yes'" });
  cases.push({ endpoint: "/volumes/prune", method: "POST", filters: '{"until":["1h"]}', message: "invalid filter 'until'" });
  for (const endpoint of lists) {
    cases.push({ endpoint, method: "GET", filters: '{"bogus":["1"]}', message: "invalid filter 'bogus'" });
    cases.push({ endpoint, method: "GET", filters: "{not json", message: "invalid filter" });
    cases.push({ endpoint, method: "GET", filters: '{"label":{"a":"yes"}}', message: "invalid filter" });
  }
  cases.push({ endpoint: "/containers/json?all=1", method: "GET", filters: '{"status":["sleeping"]}', message: "invalid filter 'status=sleeping'" });
  cases.push({ endpoint: "/containers/json?all=1", method: "GET", filters: '{"exited":["x"]}', message: "invalid filter 'exited=x'" });
  cases.push({ endpoint: "/images/json", method: "GET", filters: '{"dangling":["maybe"]}', message: "invalid filter 'dangling=maybe'" });
  cases.push({ endpoint: "/images/json", method: "GET", filters: '{"until":["bogus"]}', message: "failed to parse value as time or duration" });
  cases.push({ endpoint: "/networks", method: "GET", filters: '{"dangling":["maybe"]}', message: "invalid filter 'dangling=maybe'" });
  cases.push({ endpoint: "/networks", method: "GET", filters: '{"type":["weird"]}', message: "invalid filter: 'type'='weird'" });
  cases.push({ endpoint: "/volumes", method: "GET", filters: '{"dangling":["maybe"]}', message: "invalid filter 'dangling=maybe'" });

  test(`${cases.length} bad filters: 400 with the reason, and every container, image, network and volume is still there`, async () => {
    const before = await snapshot();
    expect(before.containers.length).toBe(2);
    expect(before.images).toContain(danglingImage);
    for (const c of cases) {
      const sep = c.endpoint.includes("?") ? "&" : "?";
      const res = await d.api(`${c.endpoint}${sep}${q(c.filters)}`, { method: c.method });
      const body = (await res.json()) as { message?: string };
      expect({ case: `${c.method} ${c.endpoint} ${c.filters}`, status: res.status }).toEqual({ case: `${c.method} ${c.endpoint} ${c.filters}`, status: 400 });
      expect(body.message).toContain(c.message);
    }
    expect(await snapshot()).toEqual(before);
  });

  test("the docker CLI reports a bad prune filter and removes nothing", async () => {
    const before = await snapshot();
    for (const args of [
      ["container", "prune", "-f", "--filter", "until=bogus"],
      ["image", "prune", "-f", "--filter", "until=bogus"],
      ["network", "prune", "-f", "--filter", "until=bogus"],
      ["volume", "prune", "-f", "--filter", "bogus=1"],
      ["system", "prune", "-f", "--filter", "until=bogus"],
    ]) {
      const r = await d.docker(args);
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.stderr).toMatch(/failed to parse value as time or duration|invalid filter/);
    }
    expect(await snapshot()).toEqual(before);
  });

  test("until still selects by age: 10m ago keeps a new container, a time ahead prunes it", async () => {
    await ok(["create", "--name", "young", "--label", "prune=young", "--network", "none", IMG, "true"]);
    const kept = await d.api(`/containers/prune?${q('{"until":["10m"],"label":["prune=young"]}')}`, { method: "POST" });
    expect(((await kept.json()) as any).ContainersDeleted).toBeNull();
    const ahead = new Date(Date.now() + 3600_000).toISOString();
    const gone = await d.api(`/containers/prune?${q(JSON.stringify({ until: [ahead], label: { "prune=young": true } }))}`, { method: "POST" });
    expect(((await gone.json()) as any).ContainersDeleted).toHaveLength(1);
    expect((await d.docker(["inspect", "young"])).code).toBe(1);
  });
});
