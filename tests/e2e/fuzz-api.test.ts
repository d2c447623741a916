/**
 * A bounded fuzz of the Docker API's input schemas: container, network, volume and exec
 * create bodies, update bodies and the `filters` of every list and prune endpoint, generated from valid
 * requests by seeded mutations (wrong types, negatives, huge numbers, nested garbage,
 * unknown keys, deep nesting, broken JSON). Every answer must be a 4xx, or a 2xx for a
 * request that happens to be valid (then undone); never a 5xx. The daemon must stay
 * healthy and the state (containers, images, networks, volumes, the records' inspect
 * output) unchanged. A failure prints the seed: ARCBOX_FUZZ_SEED=<seed> replays it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import type { TestDaemon } from "../helpers/daemon.ts";

const CASES = Number(process.env.ARCBOX_FUZZ_CASES ?? 300);
/** 30 s for the default 300 cases. */
const BUDGET_MS = CASES * 100;
const SEED = Number(process.env.ARCBOX_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;
const work = mkdtempSync(join(tmpdir(), "arcbox-fuzz-"));

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-fuzz-");
  d = fx.d;
  IMG = fx.image;
  // Something for every prune to (wrongly) take, and the update target.
  await ok(["create", "--name", "fuzz-stopped", "--label", "keep=1", "--network", "none", IMG, "true"]);
  await ok(["commit", "fuzz-stopped"]);
  await ok(["network", "create", "fuzz-net"]);
  await ok(["volume", "create", "fuzz-vol"]);
  await ok(["create", "--name", "fuzz-target", "--memory", "64m", "--network", "none", IMG, "sleep", "1000"]);
}, 180_000);

afterAll(async () => {
  await fx?.dispose();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

async function ok(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** mulberry32: small, fast, good enough to drive mutations reproducibly. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, pick, chance: (p: number) => next() < p };
}
type Rng = ReturnType<typeof prng>;
type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const NUMBERS = [0, -1, -2, 1, 1.5, -0.5, 999, 1000, 6 * 1024 * 1024 - 1, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 2 ** 63, 1e30, -1e30, 1e308, 99e9, 65536, 70000, 1e-9];
const STRINGS = [
  "",
  " ",
  "x",
  "bogus",
  "-1",
  "0",
  "1",
  "true",
  "false",
  "null",
  "1h",
  "10m",
  "-1h",
  "0-",
  "0-4096",
  "abc",
  "2024-13-45",
  "2024-02-30T25:00",
  "1700000000.5",
  "NONE",
  "ALL",
  "CAP_BOGUS",
  "net_admin",
  "80/tcp",
  "70000",
  "9000-8000",
  "::1",
  "on-failure",
  "always",
  "none",
  "host",
  "container:nope",
  "bridge",
  "a=b",
  "label!",
  `${"*".repeat(64)}x`,
  "a*".repeat(40),
  "é\u0000\uffff",
  "💥",
  "x".repeat(10_000),
  "%s%n",
  "../../etc/passwd",
  "${HOME}",
];
const KEYS = [
  "Memory",
  "MemorySwap",
  "NanoCpus",
  "CpuShares",
  "CpuQuota",
  "CpuPeriod",
  "CpusetCpus",
  "PidsLimit",
  "ShmSize",
  "RestartPolicy",
  "CapAdd",
  "CapDrop",
  "PortBindings",
  "Tmpfs",
  "Mounts",
  "Dns",
  "ExtraHosts",
  "Privileged",
  "Init",
  "LogConfig",
  "Sysctls",
  "Ulimits",
  "BlkioWeight",
  "until",
  "label",
  "dangling",
  "status",
  "exited",
  "name",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "",
  "Bogus",
];

function scalar(r: Rng): Json {
  switch (r.int(4)) {
    case 0:
      return r.pick(NUMBERS);
    case 1:
      return r.pick(STRINGS);
    case 2:
      return r.chance(0.5);
    default:
      return null;
  }
}

function garbage(r: Rng, depth: number): Json {
  if (depth <= 0 || r.chance(0.3)) return scalar(r);
  if (r.chance(0.5)) return Array.from({ length: r.int(4) }, () => garbage(r, depth - 1));
  const o: Record<string, Json> = {};
  for (let i = r.int(4); i > 0; i--) o[r.pick(KEYS)] = garbage(r, depth - 1);
  return o;
}

function deep(r: Rng): Json {
  let v: Json = scalar(r);
  for (let i = 20 + r.int(500); i > 0; i--) v = r.chance(0.5) ? [v] : { [r.pick(KEYS)]: v };
  return v;
}

/** Every (container, key) pair inside a JSON value, the root's own slot excluded. */
function slots(v: Json, out: [Record<string, Json> | Json[], string | number][] = []): typeof out {
  if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), slots(x, out)));
  else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) out.push([v, k]), slots(x, out);
  return out;
}

function mutate(r: Rng, base: Json): Json {
  const v = structuredClone(base);
  for (let n = 1 + r.int(3); n > 0; n--) {
    const all = slots(v);
    const objects = [v, ...all.map(([c, k]) => (c as any)[k] as Json)].filter((x): x is Record<string, Json> => !!x && typeof x === "object" && !Array.isArray(x));
    const op = r.int(8);
    if (op === 0 && objects.length)
      r.pick(objects)[r.pick(KEYS)] = garbage(r, 3); // unknown or known key, random value
    else if (op === 1 && objects.length) r.pick(objects)[r.pick(KEYS)] = deep(r);
    else if (all.length) {
      const [c, k] = r.pick(all);
      const set = (x: Json) => ((c as any)[k] = x);
      if (op === 2) set(r.pick(NUMBERS));
      else if (op === 3) set(r.pick(STRINGS));
      else if (op === 4) set(garbage(r, 4));
      else if (op === 5) Array.isArray(c) ? c.splice(k as number, 1) : delete (c as any)[k];
      else if (op === 6) set(r.chance(0.5) ? [] : {});
      else set(typeof (c as any)[k] === "number" ? -(c as any)[k] : null);
    }
  }
  return v;
}

/** The request body: usually the mutated JSON, sometimes broken JSON or a top-level non-object. */
function encode(r: Rng, v: Json): { body: string; contentType: string } {
  const roll = r.next();
  const contentType = r.chance(0.03) ? r.pick(["text/plain", "application/x-www-form-urlencoded", ""]) : "application/json";
  if (roll < 0.04) return { body: JSON.stringify(v).slice(0, 1 + r.int(40)), contentType };
  if (roll < 0.07) return { body: JSON.stringify(r.pick([null, 5, "x", [1, 2], true])), contentType };
  if (roll < 0.08) return { body: "[".repeat(2000) + "]".repeat(2000), contentType };
  if (roll < 0.1) {
    // Nesting just under and well over Docker's 10,000-level bound, at a random place.
    const levels = roll < 0.09 ? 5000 + r.int(4990) : 10_001 + r.int(200_000);
    const nested = `${`{"${r.pick(KEYS)}":`.repeat(levels)}0${"}".repeat(levels)}`;
    const copy = structuredClone(v);
    const objects = [copy, ...slots(copy).map(([c, k]) => (c as any)[k] as Json)].filter((x): x is Record<string, Json> => !!x && typeof x === "object" && !Array.isArray(x));
    if (objects.length) {
      r.pick(objects)[r.pick(["Bogus", "Sysctls", "Labels", "Healthcheck", "Junk", "Mounts"])] = "@DEEP@";
      return { body: JSON.stringify(copy).replace('"@DEEP@"', nested), contentType };
    }
  }
  return { body: JSON.stringify(v), contentType };
}

/** What must not change: every container, image, network and volume, and the fixtures' records. */
async function snapshot() {
  const get = async (p: string) => {
    const res = await d.api(p);
    expect({ p, status: res.status }).toEqual({ p, status: 200 });
    return res.json() as Promise<any>;
  };
  const inspect = async (ref: string) => {
    const v = await get(`/containers/${ref}/json`);
    return { Id: v.Id, Name: v.Name, State: v.State.Status, Config: v.Config, HostConfig: v.HostConfig, Mounts: v.Mounts };
  };
  const [containers, images, networks, volumes, stopped, target] = await Promise.all([
    get("/containers/json?all=1"),
    get("/images/json?all=1"),
    get("/networks"),
    get("/volumes"),
    inspect("fuzz-stopped"),
    inspect("fuzz-target"),
  ]);
  return {
    containers: containers.map((c: any) => `${c.Id} ${c.Names} ${c.State}`).sort(),
    images: images.map((i: any) => i.Id).sort(),
    networks: networks.map((n: any) => n.Id).sort(),
    volumes: volumes.Volumes.map((v: any) => v.Name).sort(),
    stopped,
    target,
  };
}

const FILTER_ENDPOINTS: { path: string; method: "GET" | "POST"; base: Record<string, Json>; prune?: boolean }[] = [
  { path: "/containers/json?all=1", method: "GET", base: { status: ["exited"], label: ["keep=1"], exited: ["0"], name: ["fuzz"] } },
  { path: "/images/json", method: "GET", base: { dangling: ["true"], reference: ["busy*"], label: { "a=b": true } } },
  { path: "/networks", method: "GET", base: { driver: ["bridge"], type: ["custom"], dangling: ["false"] } },
  { path: "/volumes", method: "GET", base: { dangling: ["true"], driver: ["local"], name: ["fuzz"] } },
  { path: "/events?since=0&until=1", method: "GET", base: { type: ["container"], event: ["start"] } },
  { path: "/containers/prune", method: "POST", base: { until: ["10m"], "label!": ["keep=0"] }, prune: true },
  { path: "/images/prune", method: "POST", base: { dangling: ["false"], until: ["2024-01-01T00:00:00Z"] }, prune: true },
  { path: "/networks/prune", method: "POST", base: { until: ["1700000000"] }, prune: true },
  { path: "/volumes/prune", method: "POST", base: { all: ["true"] }, prune: true },
  { path: "/build/prune", method: "POST", base: { until: ["24h"], type: ["regular"] } },
];

test(`fuzz: ${CASES} generated create/update/filter requests answer 4xx (or a clean 2xx), never 5xx, and change nothing`, async () => {
  const r = prng(SEED);
  const log: string[] = [];
  const started = Date.now();
  const counts: Record<string, number> = {};
  try {
    let expected = await snapshot();
    const baseCreate: Json = {
      Image: IMG,
      Cmd: ["true"],
      Env: ["A=1"],
      Labels: { fuzz: "1" },
      ExposedPorts: { "80/tcp": {} },
      StopTimeout: 5,
      HostConfig: {
        NetworkMode: "none",
        Memory: 64 << 20,
        MemorySwap: -1,
        CpuShares: 512,
        PidsLimit: 50,
        CapAdd: ["NET_ADMIN"],
        Tmpfs: { "/scratch": "size=1m" },
        RestartPolicy: { Name: "no" },
        PortBindings: { "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
      },
      NetworkingConfig: { EndpointsConfig: { none: { Aliases: ["a"] } } },
    };
    const BODIES: Record<"create" | "update" | "network" | "volume" | "exec", { path: string; base: Json }> = {
      create: { path: "/containers/create", base: baseCreate },
      update: {
        path: "/containers/fuzz-target/update",
        base: { Memory: 32 << 20, MemorySwap: 64 << 20, CpuShares: 256, PidsLimit: 40, CpusetCpus: "0", RestartPolicy: { Name: "on-failure", MaximumRetryCount: 2 } },
      },
      network: { path: "/networks/create", base: { Name: "fuzz-made", Driver: "bridge", Internal: true, Attachable: false, EnableIPv6: false, Labels: { fuzz: "1" }, Options: {} } },
      volume: { path: "/volumes/create", base: { Name: "fuzz-made", Driver: "local", Labels: { fuzz: "1" }, DriverOpts: {} } },
      // The target is not running: a valid exec is a 409, after its body was checked.
      exec: { path: "/containers/fuzz-target/exec", base: { Cmd: ["true"], AttachStdout: true, Env: ["A=1"], WorkingDir: "/", User: "", Tty: false, Privileged: false } },
    };
    for (let i = 0; i < CASES; i++) {
      const slot = i % 20;
      const kind = slot < 6 ? "create" : slot < 10 ? "update" : slot < 16 ? "filters" : slot < 18 ? "network" : slot < 19 ? "volume" : "exec";
      let res: Response;
      let what: string;
      if (kind === "filters") {
        const ep = r.pick(FILTER_ENDPOINTS);
        const v = mutate(r, ep.base);
        // A prune that parses must still remove nothing: pin it to a label nothing has.
        if (ep.prune && v && typeof v === "object" && !Array.isArray(v)) v.label = ["fuzz-guard=never"];
        // Truncated JSON never parses (a prefix is never empty, so never "no filters").
        const raw = r.chance(0.08) ? JSON.stringify(v).slice(0, 1 + r.int(20)) : JSON.stringify(v);
        what = `${ep.method} ${ep.path} filters=${raw.slice(0, 300)}`;
        res = await d.api(`${ep.path}${ep.path.includes("?") ? "&" : "?"}filters=${encodeURIComponent(raw)}`, { method: ep.method });
      } else {
        const target = BODIES[kind];
        const { body, contentType } = encode(r, mutate(r, target.base));
        what = `${kind} (${contentType}) ${body.slice(0, 300)}`;
        res = await d.api(target.path, { method: "POST", headers: contentType ? { "Content-Type": contentType } : {}, body });
      }
      const text = await res.text();
      log.push(`#${i} ${res.status} ${what} -> ${text.slice(0, 200)}`);
      if (res.status >= 500 || res.status < 200 || (res.status >= 300 && res.status < 400)) throw new Error(`case #${i}: ${res.status} ${text}\n  request: ${what}`);
      const bucket = `${kind} ${res.status < 300 ? "2xx" : "4xx"}`;
      counts[bucket] = (counts[bucket] ?? 0) + 1;
      if (res.status < 300 && kind !== "filters" && kind !== "update") {
        // A valid create: the object must inspect, then go away completely.
        const made = JSON.parse(text) as { Id?: string; Name?: string };
        const ref = kind === "volume" ? made.Name! : made.Id!;
        const base = { create: "/containers", network: "/networks", volume: "/volumes", exec: "/exec" }[kind];
        const view = await d.api(`${base}/${ref}${kind === "create" || kind === "exec" ? "/json" : ""}`);
        if (view.status !== 200) throw new Error(`case #${i}: created ${kind} ${ref} but inspect answered ${view.status} ${await view.text()}\n  request: ${what}`);
        await view.arrayBuffer();
        if (kind !== "exec") {
          const rm = await d.api(`${base}/${ref}${kind === "create" ? "?force=1&v=1" : ""}`, { method: "DELETE" });
          if (rm.status !== 204) throw new Error(`case #${i}: created ${kind} ${ref} but rm answered ${rm.status} ${await rm.text()}`);
        }
      }
      if (res.status < 300 && kind === "update") expected = { ...expected, target: (await snapshot()).target };
      if (i % 30 === 29 || i === CASES - 1) {
        const ping = await d.api("/_ping");
        if (ping.status !== 200) throw new Error(`case #${i}: the daemon stopped answering /_ping (${ping.status})`);
        expect(await snapshot()).toEqual(expected);
      }
    }
    const elapsed = Date.now() - started;
    if (process.env.ARCBOX_FUZZ_LOG) console.log(log.filter((l) => l.includes(process.env.ARCBOX_FUZZ_LOG!)).join("\n"));
    console.log(`fuzz seed ${SEED}: ${CASES} cases in ${elapsed} ms: ${JSON.stringify(counts)}`);
    expect(elapsed).toBeLessThan(BUDGET_MS);
    // Whatever update accepted, the target still starts.
    const start = await d.api("/containers/fuzz-target/start", { method: "POST" });
    expect(start.status).toBe(204);
    expect((await snapshot()).target.State).toBe("running");
  } catch (err) {
    console.error(`fuzz failed with ARCBOX_FUZZ_SEED=${SEED}; last requests:\n${log.slice(-5).join("\n")}`);
    throw err;
  }
}, 120_000);
