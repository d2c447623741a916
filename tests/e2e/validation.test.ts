/**
 * Bad input never costs data: prune and list filters that do not parse are refused
 * before anything is touched, and create/update refuse what Docker refuses (with
 * Docker's words) before anything is stored, so the record stays inspectable and
 * startable. Raw API through TestDaemon.api, plus the real docker CLI.
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

const json = { "Content-Type": "application/json" };

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

  test("image reference globs match in linear time; a malformed one is a 400", async () => {
    // A backtracking regular expression took imaged down on this pattern.
    const t0 = Date.now();
    const slow = await d.api(`/images/json?${q(JSON.stringify({ reference: [`${"*".repeat(64)}x`] }))}`);
    expect(slow.status).toBe(200);
    expect(await slow.json()).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(2000);
    const both = await getJson(`/images/json?${q(JSON.stringify({ reference: ["*/b[t-v]sy?ox:*"] }))}`);
    expect(both.flatMap((i: any) => i.RepoTags)).toEqual([IMG]);
    const bad = await d.api(`/images/json?${q('{"reference":["busy[box"]}')}`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).message).toContain("syntax error in pattern");
  });

  test("container name filters are regular expressions matched in linear time", async () => {
    const long = "a".repeat(40);
    await ok(["create", "--name", long, "--network", "none", IMG, "true"]);
    // A backtracking RegExp needs minutes for this against 40 a's.
    const t0 = Date.now();
    expect(await getJson(`/containers/json?all=1&${q(JSON.stringify({ name: ["(a+)+b"] }))}`)).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(2000);
    const names = async (pattern: string) => (await getJson(`/containers/json?all=1&${q(JSON.stringify({ name: [pattern] }))}`)).map((c: any) => c.Names[0]).sort();
    expect(await names("^a{40}$")).toEqual([`/${long}`]);
    expect(await names("^stopped-[0-9]$")).toEqual(["/stopped-1", "/stopped-2"]);
    expect(await names("stopped-(?:2|9)")).toEqual(["/stopped-2"]);
    // Outside the supported syntax the value matches as text.
    expect(await names("(?i)STOPPED")).toEqual([]);
    await ok(["rm", long]);
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

/** HostConfig fields an update may touch, as inspect shows them. */
async function limits(ref: string) {
  const h = (await getJson(`/containers/${ref}/json`)).HostConfig;
  return {
    Memory: h.Memory,
    MemorySwap: h.MemorySwap,
    NanoCpus: h.NanoCpus,
    CpuShares: h.CpuShares,
    CpuQuota: h.CpuQuota,
    CpuPeriod: h.CpuPeriod,
    CpusetCpus: h.CpusetCpus,
    PidsLimit: h.PidsLimit,
    RestartPolicy: h.RestartPolicy,
  };
}

describe("update validates everything before it stores anything", () => {
  const bad: { body: string; contentType?: string; status?: number; message: string }[] = [
    { body: '{"PidsLimit":"x","Memory":"lots"}', message: "invalid update: " },
    { body: '{"Memory":-1}', message: "Minimum memory limit allowed is 6MB" },
    { body: '{"Memory":1000}', message: "Minimum memory limit allowed is 6MB" },
    { body: '{"Memory":7340032.5}', message: "invalid update: Memory" },
    { body: '{"Memory":1e30}', message: "invalid update: Memory" },
    { body: '{"NanoCpus":99e9}', message: "Range of CPUs is from 0.01 to" },
    { body: '{"NanoCpus":-1}', message: "Range of CPUs is from 0.01 to" },
    { body: '{"Memory":20000000,"MemorySwap":10000000}', message: "Minimum memoryswap limit should be larger than memory limit" },
    { body: '{"MemorySwap":100000000}', message: "You should always set the Memory limit when using Memoryswap limit" },
    { body: '{"MemorySwap":-5}', message: "Invalid value for MemorySwap" },
    { body: '{"CpuPeriod":-1}', message: "CPU cfs period can not be less than 1ms" },
    { body: '{"CpuQuota":-10}', message: "CPU cfs quota can not be less than 1ms" },
    { body: '{"CpuShares":-2}', message: "CPU shares can not be negative" },
    { body: '{"CpusetCpus":"abc"}', message: "Invalid value abc for cpuset cpus: invalid format: abc" },
    { body: '{"CpusetCpus":"0-4096"}', message: "Requested CPUs are not available" },
    { body: '{"RestartPolicy":{"Name":"bogus"}}', message: "invalid restart policy 'bogus'" },
    { body: '{"RestartPolicy":{"Name":"always","MaximumRetryCount":3}}', message: "maximum retry count cannot be used with restart policy 'always'" },
    { body: '{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-3}}', message: "maximum retry count cannot be negative" },
    { body: '{"RestartPolicy":"always"}', message: "invalid update: RestartPolicy" },
    { body: '{"BlkioWeight":500}', message: "BlkioWeight cannot be updated by ArcBox" },
    { body: '{"Memory":20000000,"BlkioWeight":500}', message: "BlkioWeight cannot be updated by ArcBox" },
    { body: "[1]", message: "invalid update: body" },
    { body: '"x"', message: "invalid update: body" },
    { body: "{nope", message: "invalid JSON" },
    { body: "{}", contentType: "text/plain", message: "Content-Type specified (text/plain) must be 'application/json'" },
  ];

  test(`${bad.length} bad updates: 400 with Docker's reason; the record is unchanged and still starts`, async () => {
    await ok(["create", "--name", "upd", "--network", "none", IMG, "sleep", "1000"]);
    const before = await limits("upd");
    for (const c of bad) {
      const res = await d.api("/containers/upd/update", { method: "POST", headers: { "Content-Type": c.contentType ?? "application/json" }, body: c.body });
      const body = (await res.json()) as { message?: string };
      expect({ body: c.body, status: res.status }).toEqual({ body: c.body, status: c.status ?? 400 });
      expect(body.message).toContain(c.message);
      expect(await limits("upd")).toEqual(before);
    }
    expect((await d.docker(["start", "upd"])).code).toBe(0);
    expect((await getJson("/containers/upd/json")).State.Running).toBe(true);
    // A valid update still applies, to the record and to the running container.
    const good = await d.api("/containers/upd/update", { method: "POST", headers: json, body: JSON.stringify({ Memory: 64 << 20, MemorySwap: 128 << 20, PidsLimit: 99, Unknown: { ignored: true } }) });
    expect(good.status).toBe(200);
    expect(await limits("upd")).toEqual({ ...before, Memory: 64 << 20, MemorySwap: 128 << 20, PidsLimit: 99 });
    expect((await d.docker(["exec", "upd", "cat", "/sys/fs/cgroup/pids/pids.max"])).stdout.trim()).toBe("99");
    // Raising memory above the swap already set must raise the swap too (Docker's 409).
    const raise = await d.api("/containers/upd/update", { method: "POST", headers: json, body: JSON.stringify({ Memory: 256 << 20 }) });
    expect(raise.status).toBe(409);
    expect(((await raise.json()) as any).message).toContain("Memory limit should be smaller than already set memoryswap limit");
    await ok(["rm", "-f", "upd"]);
  });

  test("CPU limits set one way cannot be changed the other way (409), and the CLI shows the reason", async () => {
    await ok(["create", "--name", "upd-cpus", "--cpus", "1", "--network", "none", IMG, "true"]);
    const before = await limits("upd-cpus");
    const res = await d.api("/containers/upd-cpus/update", { method: "POST", headers: json, body: JSON.stringify({ CpuQuota: 50000 }) });
    expect(res.status).toBe(409);
    expect(((await res.json()) as any).message).toContain("CPU Quota cannot be updated as NanoCPUs has already been set");
    const cli = await d.docker(["update", "--memory", "1000", "upd-cpus"]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("Minimum memory limit allowed is 6MB");
    expect(await limits("upd-cpus")).toEqual(before);
    await ok(["rm", "upd-cpus"]);
  });
});

describe("create refuses what Docker refuses, before anything is created", () => {
  const hc = (HostConfig: object) => JSON.stringify({ Image: "IMAGE", Cmd: ["true"], HostConfig: { NetworkMode: "none", ...HostConfig } });
  const bad: { body: string; contentType?: string; message: string }[] = [
    { body: hc({ CpuPeriod: -1 }), message: "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)" },
    { body: hc({ CpuQuota: -10 }), message: "CPU cfs quota can not be less than 1ms" },
    { body: hc({ CpuQuota: 500 }), message: "CPU cfs quota can not be less than 1ms" },
    { body: hc({ PortBindings: { "80/tcp": [{ HostPort: "70000" }] } }), message: 'invalid port specification: "70000"' },
    { body: hc({ PortBindings: { "80/tcp": [{ HostPort: "9000-8000" }] } }), message: 'invalid port specification: "9000-8000"' },
    { body: hc({ PortBindings: { "99999/tcp": [{ HostPort: "80" }] } }), message: 'invalid port specification: "99999"' },
    { body: hc({ CapAdd: ["CAP_BOGUS"] }), message: 'invalid CapAdd: unknown capability: "CAP_BOGUS"' },
    { body: hc({ CapDrop: ["bogus"] }), message: 'invalid CapDrop: unknown capability: "CAP_BOGUS"' },
    { body: hc({ ShmSize: -1 }), message: "SHM size can not be less than 0" },
    { body: hc({ CpusetCpus: "abc" }), message: "Invalid value abc for cpuset cpus: invalid format: abc" },
    { body: hc({ Memory: 20_000_000, MemorySwap: 10_000_000 }), message: "Minimum memoryswap limit should be larger than memory limit, see usage" },
    { body: hc({ MemorySwap: 10_000_000 }), message: "You should always set the Memory limit when using Memoryswap limit" },
    { body: hc({ Memory: 1000 }), message: "Minimum memory limit allowed is 6MB" },
    { body: hc({ Memory: -1 }), message: "Minimum memory limit allowed is 6MB" },
    { body: hc({ Memory: "lots" }), message: "invalid container config: HostConfig.Memory" },
    { body: hc({ NanoCpus: 99e9 }), message: "Range of CPUs is from 0.01 to" },
    { body: hc({ NanoCpus: 1e9, CpuQuota: 50000 }), message: "Conflicting options: Nano CPUs and CPU Quota cannot both be set" },
    { body: hc({ RestartPolicy: { Name: "sometimes" } }), message: "invalid restart policy 'sometimes'" },
    { body: hc({ Sysctls: { "vm.swappiness": "1" } }), message: "sysctl 'vm.swappiness' is not allowed" },
    { body: hc({ OomScoreAdj: 500 }), message: "HostConfig.OomScoreAdj is not supported by ArcBox" },
    {
      body: JSON.stringify({ Image: "IMAGE", NetworkingConfig: { EndpointsConfig: { bridge: { Aliases: "one" } } } }),
      message: "invalid container config: NetworkingConfig.EndpointsConfig.bridge.Aliases",
    },
    { body: JSON.stringify({ Image: "IMAGE" }), contentType: "text/plain", message: "Content-Type specified (text/plain) must be 'application/json'" },
  ];

  test(`${bad.length} bad creates: 400 with Docker's reason, nothing created`, async () => {
    const before = await snapshot();
    for (const c of bad) {
      const body = c.body.replace("IMAGE", IMG);
      const res = await d.api("/containers/create", { method: "POST", headers: { "Content-Type": c.contentType ?? "application/json" }, body });
      const answer = (await res.json()) as { message?: string };
      expect({ body: c.body, status: res.status }).toEqual({ body: c.body, status: 400 });
      expect(answer.message).toContain(c.message);
    }
    expect(await snapshot()).toEqual(before);
  });

  test("fields Docker does not know are ignored (dockerode sends `name` in the body); legal edge values are kept", async () => {
    const body = {
      Image: IMG,
      Cmd: ["true"],
      name: "ignored",
      Bogus: { deep: [1, 2] },
      ExposedPorts: { "80/tcp": { junk: [1] } },
      HostConfig: { NetworkMode: "none", NotAField: 5, CpuQuota: -1, MemorySwap: -1, Memory: 7 << 20, CapAdd: ["net_admin", "ALL"], PortBindings: { "80/tcp": [{ HostPort: "" }] } },
    };
    const res = await d.api("/containers/create?name=lenient", { method: "POST", headers: json, body: JSON.stringify(body) });
    expect(res.status).toBe(201);
    const view = await getJson("/containers/lenient/json");
    expect(view.Config.ExposedPorts).toEqual({ "80/tcp": {} });
    expect(view.HostConfig.CpuQuota).toBe(-1);
    expect(view.HostConfig.NotAField).toBeUndefined();
    await ok(["rm", "lenient"]);
  });

  test("bodies nested deeper than Docker's 10,000 levels are a 400, not a stack overflow; 9,000 levels still parse", async () => {
    const before = await snapshot();
    const deep = (levels: number, leaf = "0") => '{"a":'.repeat(levels) + leaf + "}".repeat(levels);
    const places = [
      (x: string) => `{"Image":"${IMG}","Cmd":["true"],"Healthcheck":${x}}`,
      (x: string) => `{"Image":"${IMG}","Cmd":["true"],"HostConfig":{"NetworkMode":"none","Sysctls":${x}}}`,
      (x: string) => `{"Image":"${IMG}","Cmd":["true"],"HostConfig":{"NetworkMode":"none","Mounts":[{"Type":"tmpfs","Target":"/x","Junk":${x}}]}}`,
      (x: string) => `{"Image":"${IMG}","Cmd":["true"],"NetworkingConfig":{"EndpointsConfig":{"none":{"Junk":${x}}}}}`,
    ];
    for (const place of places) {
      const res = await d.api("/containers/create", { method: "POST", headers: json, body: place(deep(150_000)) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as any).message).toContain("exceeded max depth");
    }
    for (const path of ["/networks/create", "/volumes/create", "/containers/stopped-1/exec", "/containers/stopped-1/update"]) {
      const res = await d.api(path, { method: "POST", headers: json, body: `{"Name":"deep","Junk":${deep(150_000)}}` });
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
    }
    const ok9000 = await d.api("/containers/create", { method: "POST", headers: json, body: places[1]!(deep(9000, "1")) });
    expect(ok9000.status).toBe(400);
    expect(((await ok9000.json()) as any).message).toContain("invalid container config: HostConfig.Sysctls.a");
    expect(await snapshot()).toEqual(before);
  });

  test("docker run shows the reason and exits 125", async () => {
    const before = await snapshot();
    for (const [args, message] of [
      [["--cpu-quota", "-10"], "CPU cfs quota can not be less than 1ms"],
      [["--cap-add", "BOGUS"], 'unknown capability: "CAP_BOGUS"'],
      [["--cpuset-cpus", "abc"], "Invalid value abc for cpuset cpus"],
      [["--memory", "20m", "--memory-swap", "10m"], "Minimum memoryswap limit should be larger than memory limit"],
    ] as [string[], string][]) {
      const r = await d.docker(["run", "--rm", "--network", "none", ...args, IMG, "true"]);
      expect({ args, code: r.code }).toEqual({ args, code: 125 });
      expect(r.stderr).toContain(message);
    }
    expect(await snapshot()).toEqual(before);
  });
});

describe("filters that parse still select what they say (runs last: it prunes the fixtures)", () => {
  test("image prune with label!, network prune with until ahead, volume prune with all", async () => {
    const images = await d.api(`/images/prune?${q('{"label!":["nothing=here"],"dangling":["true"]}')}`, { method: "POST" });
    expect(images.status).toBe(200);
    expect(((await images.json()) as any).ImagesDeleted).toContainEqual({ Deleted: danglingImage });
    const keptNet = await d.api(`/networks/prune?${q('{"until":["1h"],"label":["team=a"]}')}`, { method: "POST" });
    expect(((await keptNet.json()) as any).NetworksDeleted).toBeNull();
    const ahead = Math.floor(Date.now() / 1000) + 3600;
    const nets = await d.api(`/networks/prune?${q(JSON.stringify({ until: [String(ahead)], label: ["team=a"] }))}`, { method: "POST" });
    expect(((await nets.json()) as any).NetworksDeleted).toEqual(["unused-net"]);
    const vols = await d.api(`/volumes/prune?${q('{"all":["1"],"label":{"team=a":true}}')}`, { method: "POST" });
    expect(((await vols.json()) as any).VolumesDeleted).toEqual(["unused-vol"]);
  });
});
