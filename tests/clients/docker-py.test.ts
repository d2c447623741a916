/**
 * Debian's python3-docker (docker-py 5, API 1.41) against ArcBox, and the very same
 * calls against Docker Engine (Debian's dockerd 20.10, in a network namespace of its own,
 * bench/lib/dockerd.ts) for parity: statuses, answer shapes (keys and value types) and
 * behaviour must match, except for the differences listed here and in docs/compat.md.
 *
 * tests/clients/python/api_probe.py makes the calls: create options, networks, exec and
 * attach streams, detach keys, commit, health checks, swarm answers, distribution, prune
 * results, cancellation. Both engines pull the same busybox image from one registry on
 * the peer namespace's host address.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run, TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { createPeerNetns, startDockerd, type DockerEngine, type PeerNetns } from "../../bench/lib/dockerd.ts";

const PROBE = join(import.meta.dir, "python", "api_probe.py");

type Shape = string | Shape[] | { [k: string]: Shape };
interface CaseResult {
  status?: number;
  shape?: Shape;
  fact?: Record<string, unknown>;
  error?: string;
  trace?: string;
}
type Results = Record<string, CaseResult>;

let netns: PeerNetns | undefined;
let reg: TestRegistry | undefined;
let arcbox: TestDaemon | undefined;
let peer: DockerEngine | undefined;
let image: string;
let ours: Results;
let theirs: Results;

async function probe(dockerHost: string): Promise<Results> {
  // Debian's python (and its python3-docker), whatever python3 comes first on PATH.
  const r = await run(["/usr/bin/python3", PROBE, image, image], { env: { DOCKER_HOST: dockerHost }, timeoutMs: 150_000 });
  if (r.code !== 0) throw new Error(`api_probe.py failed (${r.code}) on ${dockerHost}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Results;
}

async function pull(dockerHost: string): Promise<void> {
  const r = await run(["docker", "-H", dockerHost, "pull", "-q", image]);
  if (r.code !== 0) throw new Error(`pull on ${dockerHost} failed: ${r.stderr}`);
}

beforeAll(async () => {
  netns = createPeerNetns();
  reg = await startRegistry({ hostname: netns.hostAddr });
  image = (await pushBusybox(reg)).reference;
  arcbox = new TestDaemon("arcbox-dockerpy-");
  // The registry is on the veth's host address, not loopback: both engines are told it is insecure.
  writeFileSync(join(arcbox.home, "daemon.json"), JSON.stringify({ "insecure-registries": [reg.host] }));
  const [, engine] = await Promise.all([arcbox.start(), startDockerd({ networking: true, netns, args: ["--insecure-registry", reg.host] })]);
  peer = engine;
  await Promise.all([pull(arcbox.dockerHost), pull(peer.host)]);
  [ours, theirs] = await Promise.all([probe(arcbox.dockerHost), probe(peer.host)]);
  if (process.env.PROBE_DUMP) writeFileSync(process.env.PROBE_DUMP, JSON.stringify({ arcbox: ours, dockerd: theirs }, null, 1));
}, 240_000);

afterAll(async () => {
  await arcbox?.dispose();
  await peer?.stop().catch(() => {});
  await reg?.stop();
  netns?.remove();
}, 120_000);

/** Facts of one case, failing with the probe's own error when the case threw. */
function facts(results: Results, name: string): Record<string, unknown> {
  const r = results[name];
  if (!r) throw new Error(`case ${name} did not run`);
  if (r.error) throw new Error(`case ${name}: ${r.error}\n${r.trace ?? ""}`);
  return r.fact ?? {};
}

/**
 * Where `theirs` (dockerd) has a key or a type that `ours` lacks: "path: missing" or
 * "path: dockerd T, arcbox U". Keys only ArcBox has are not differences a client notices.
 */
function shapeDiffs(theirs: Shape | undefined, ours: Shape | undefined, path = ""): string[] {
  if (theirs === undefined) return [];
  if (ours === undefined) return [`${path || "."}: missing`];
  const kind = (s: Shape) => (typeof s === "string" ? s : Array.isArray(s) ? "array" : "object");
  if (kind(theirs) !== kind(ours)) {
    // An empty list has no element type; null and an empty list are the same to most clients, not to all.
    return [`${path || "."}: dockerd ${kind(theirs)}, arcbox ${kind(ours)}`];
  }
  if (Array.isArray(theirs) && Array.isArray(ours)) return shapeDiffs(theirs[0], ours[0], `${path}[]`);
  if (typeof theirs === "object" && typeof ours === "object" && !Array.isArray(theirs) && !Array.isArray(ours)) {
    return Object.keys(theirs).flatMap((k) => shapeDiffs(theirs[k], ours[k], path ? `${path}.${k}` : k));
  }
  return [];
}

// What Docker does (checked against dockerd 20.10 by the parity tests below).
const EXPECTED: Record<string, Record<string, unknown>> = {
  create_options: {
    created_state: "created",
    // uid, hostname, domain, workdir, env, no capabilities but CHOWN (not effective for a
    // non-root user), read-only root, writable tmpfs, extra host, DNS search, and a
    // root-owned volume the user cannot write.
    output: "65534\nh1\nexample.org\n/tmp\nbar\nCapEff:0000000000000000\nro\ntmpfs-rw\n1\nsearch probe.example\nsh: can't create /vol/f: Permission denied\n",
    host_config: {
      Memory: 67108864,
      CpuShares: 512,
      PidsLimit: 50,
      ShmSize: 8388608,
      ExtraHosts: ["extra.example.test:10.1.2.3"],
      DnsSearch: ["probe.example"],
      RestartPolicy: { Name: "on-failure", MaximumRetryCount: 2 },
      ReadonlyRootfs: true,
      Tmpfs: { "/scratch": "size=1m" },
      CapAdd: ["CHOWN"],
      CapDrop: ["ALL"],
      Init: false,
    },
    config: { User: "65534", WorkingDir: "/tmp", Hostname: "h1", Domainname: "example.org", StopSignal: "SIGUSR1", Labels: { probe: "1", "x.y": "z" }, ExposedPorts: { "8080/tcp": {} } },
    name: "/probe-opts",
    mounts: [["volume", "probe-vol", "/vol", true]],
    port_published: true,
  },
  networks: {
    dup_status: 409,
    reconnect: 403,
    driver: "bridge",
    scope: "local",
    labels: { k: "v", probe: "1" },
    pings: { "probe-srv": 0, client: 0 },
    late_aliases: ["late"],
    late_ping: 0,
    members: ["probe-cli", "probe-other", "probe-srv"],
    after_disconnect: ["bridge"],
    listed: ["probe-net"],
    prune: { NetworksDeleted: ["probe-net"] },
    gone: 404,
  },
  detach_keys: { attach_output: "hi\r\nhi\r\n", attach_still_running: "running", exec_output: "exec attach failed: error on attach stdin: read escape sequence\r\n" },
  distribution: { missing_tag: 404, platforms: ["amd64"], media_type: "application/vnd.docker.distribution.manifest.v2+json" },
  create_errors: { bad_restart: 400, unknown_image: 404, dup_name: 409, bad_port: 400 },
  network_errors: { missing_inspect: 404, missing_connect: 404, remove_predefined: 403 },
  exec_streams: {
    demux: [3, "out\n", "err\n"],
    stream: "one\ntwo\n",
    env_workdir_user: [0, "1 2\n/tmp\n65534\n"],
    stdin_socket: { "1": "piped\n" },
    stdin_exit: 0,
    detach_start: "",
    detach_ran: true,
    missing_exec: 404,
    exec_in_stopped: 409,
  },
  attach_streams: { attach_logs_stream: "a\nb\nc\n", attach_stdin: { "1": "echoed\n" }, attach_stdin_container: "running" },
  commit: {
    author: "probe author",
    comment: "probe msg",
    env_has_c: true,
    cmd: ["cat", "/f"],
    label: "yes",
    exposed: { "7000/tcp": {} },
    tags: ["probe-committed:v1"],
    running_after: [true, false],
    run: "content\n",
    bad_change: 400,
    missing: 404,
  },
  healthcheck: { first: "starting", status: "healthy", streak: 0, last: [0, "fine\n"], events: ["health_status: healthy"] },
  swarm: {
    statuses: { inspect: 503, leave: 503, services: 503, nodes: 503, secrets: 503, configs: 503, tasks: 503, leave_force: true, plugins: 200 },
    node_state: "inactive",
  },
  prune: { containers: 1, volumes: ["probe-pv"], networks: ["probe-pn"], bad_filter: 400 },
  cancellation: { events_closed_within_1s: true, logs_first: "tick\n", logs_closed_within_1s: true, events_after_kill: ["die", "kill"] },
};

/**
 * Behaviour ArcBox does not match yet, owned by work in progress elsewhere (issue 9): left
 * out of the comparison and listed as todo, so they are neither hidden nor failing.
 */
const PENDING: Record<string, Record<string, string>> = {};

/**
 * Shape differences (dockerd has, ArcBox lacks or types differently): on purpose (in
 * docs/compat.md) or pending.
 */
const SHAPE_DIFFERENCES: Record<string, string[]> = {
  // On purpose: today's (API 1.50) HostConfig: empty lists as [] (dockerd 20.10: null),
  // no KernelMemory fields (dropped from the API), OomKillDisable unset (cgroup v2 engines).
  create_options: [
    "HostConfig.Dns: dockerd null, arcbox array",
    "HostConfig.DnsOptions: dockerd null, arcbox array",
    "HostConfig.BlkioWeightDevice: dockerd null, arcbox array",
    "HostConfig.BlkioDeviceReadBps: dockerd null, arcbox array",
    "HostConfig.BlkioDeviceWriteBps: dockerd null, arcbox array",
    "HostConfig.BlkioDeviceReadIOps: dockerd null, arcbox array",
    "HostConfig.BlkioDeviceWriteIOps: dockerd null, arcbox array",
    "HostConfig.Devices: dockerd null, arcbox array",
    "HostConfig.KernelMemory: missing",
    "HostConfig.KernelMemoryTCP: missing",
    "HostConfig.OomKillDisable: dockerd boolean, arcbox null",
    "HostConfig.Ulimits: dockerd null, arcbox array",
  ],
  // On purpose: a committed image's ContainerConfig (gone from API 1.45) stays empty.
  commit: ["ContainerConfig.Env: dockerd array, arcbox null", "ContainerConfig.Cmd: dockerd array, arcbox null", "ContainerConfig.Labels: dockerd object, arcbox null"],
};

function without(f: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(f).filter(([k]) => !keys.includes(k)));
}

describe("python3-docker against ArcBox", () => {
  for (const [name, want] of Object.entries(EXPECTED)) {
    const pending = Object.keys(PENDING[name] ?? {});
    test(name, () => {
      expect(without(facts(ours, name), pending)).toEqual(without(want, pending));
    });
    for (const [field, why] of Object.entries(PENDING[name] ?? {})) test.todo(`${name}.${field}: ${why}`);
  }
});

describe("parity with dockerd 20.10: statuses and answer shapes", () => {
  for (const name of Object.keys(EXPECTED)) {
    test(name, () => {
      facts(ours, name);
      facts(theirs, name);
      expect(ours[name]!.status).toBe(theirs[name]!.status!);
      expect(shapeDiffs(theirs[name]!.shape, ours[name]!.shape)).toEqual(SHAPE_DIFFERENCES[name] ?? []);
    });
  }
});

describe("the same calls against dockerd 20.10", () => {
  for (const [name, want] of Object.entries(EXPECTED)) {
    test(`${name}: dockerd answers as expected`, () => {
      expect(facts(theirs, name)).toEqual(want);
    });
  }
});
