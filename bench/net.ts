/**
 * Network data paths, ArcBox against Docker Engine in the same run:
 *   - TCP throughput container -> host (to the network's gateway address),
 *   - TCP throughput host -> a published port on 127.0.0.1 (Docker: docker-proxy;
 *     ArcBox: DNAT in the kernel),
 *   - embedded DNS lookup latency for a container name, from a container.
 * Both engines run the same busybox image with the host's bun bind-mounted in as the
 * traffic source/sink (busybox nc is too slow to measure a network path).
 * Docker runs in a network namespace of its own (bench/lib/dockerd.ts): its docker0,
 * iptables rules and docker-proxy stay there, and the host's own Docker and firewall are
 * never touched. That namespace is the Docker peer's "host": its host-side sink listens
 * there on Docker's gateway and its published-port client connects to 127.0.0.1 there,
 * so both engines are measured on their native path (bridge -> local stack; loopback ->
 * published port). ArcBox's sink and client run on the real host. Both sinks and
 * clients are separate bun processes, alike on both sides.
 * Rounds alternate between the engines; medians are reported.
 * VM mode (issue 13) is a third engine in the same run: ArcBox with every container in
 * the engine machine (TCG here: KVM is unusable on this host, so its numbers are the
 * emulator's); its container->host path ends on the host's 127.0.0.1 through
 * host-gateway (the gateway address is the machine's). A path VM mode cannot take is
 * reported as "not available in VM mode yet" with the daemon's answer, not as a failed
 * bench. --no-vm leaves it out.
 * Usage: bun bench/net.ts [--mib N] [--runs N] [--queries N] [--no-vm]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { createPeerNetns, startDockerd, type DockerEngine } from "./lib/dockerd.ts";
import { median, printReport, type Row } from "./lib/report.ts";
import { TestDaemon } from "../tests/helpers/daemon.ts";
import { startRegistry } from "../tests/helpers/registry.ts";
import { pushBusybox } from "../tests/helpers/test-images.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg("--mib", 1024);
const RUNS = arg("--runs", 3);
const QUERIES = arg("--queries", 2000);
const SINK_PORT = 5001;
const WITH_VM = !process.argv.includes("--no-vm");

const scripts = mkdtempSync(join(tmpdir(), "bench-net-"));
writeFileSync(
  join(scripts, "sink.ts"),
  `// sink.ts [HOST] [PORT]: swallows what arrives; the sender learns that all of it did from the "k" sent back after its FIN.
const [host, port] = [process.argv[2] ?? "0.0.0.0", Number(process.argv[3] ?? ${SINK_PORT})];
Bun.listen({ hostname: host, port, socket: { data() {}, end(s) { s.write("k"); s.end(); } } });
console.log("ready");
`,
);
writeFileSync(
  join(scripts, "wait-port.ts"),
  `// wait-port.ts HOST PORT: exits 0 once HOST:PORT accepts a connection (20 s at most).
const [host, port] = [process.argv[2], Number(process.argv[3])];
const deadline = Date.now() + 20_000;
while (Date.now() < deadline) {
  if (await Bun.connect({ hostname: host, port, socket: { data() {}, open(s) { s.end(); } } }).then(() => true, () => false)) process.exit(0);
  await Bun.sleep(50);
}
process.exit(1);
`,
);
writeFileSync(
  join(scripts, "source.ts"),
  `// source.ts HOST PORT MIB: sends MIB MiB, waits for the sink's acknowledgement, prints MB/s.
const [host, port, mib] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const total = mib * 1048576; const buf = new Uint8Array(1 << 20); let sent = 0; let t0 = 0;
await new Promise<void>((done, fail) => Bun.connect({ hostname: host, port, socket: {
  open(s) { t0 = performance.now(); pump(s); }, drain(s) { pump(s); }, data() { done(); }, end() { done(); }, close() { done(); }, error(_s, e) { fail(e); } } }).catch(fail));
function pump(s: any) { while (sent < total) { const want = Math.min(buf.length, total - sent); const n = s.write(buf.subarray(0, want)); sent += n; if (n < want) return; } s.shutdown(); }
console.log(((sent / 1e6) / ((performance.now() - t0) / 1000)).toFixed(1));
process.exit(0);
`,
);
writeFileSync(
  join(scripts, "dns.ts"),
  `// dns.ts NAME N: N sequential A queries to 127.0.0.11, prints the median latency in microseconds.
const [name, n] = [process.argv[2], Number(process.argv[3])];
const q = new Uint8Array([0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]), 0, 0, 1, 0, 1]);
let wake: () => void = () => {};
const sock = await Bun.udpSocket({ hostname: "0.0.0.0", socket: { data() { wake(); } } });
const times: number[] = [];
for (let i = 0; i < n; i++) {
  q[0] = i >> 8; q[1] = i & 255;
  const t0 = performance.now();
  await new Promise<void>((r) => { wake = r; sock.send(q, 53, "127.0.0.11"); });
  times.push((performance.now() - t0) * 1000);
}
times.sort((a, b) => a - b);
console.log(times[Math.floor(times.length / 2)].toFixed(1));
process.exit(0);
`,
);

const mounts = ["-v", "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro", "-v", "/lib64:/lib64:ro", "-v", `${process.execPath}:/usr/local/bin/bun:ro`, "-v", `${scripts}:/bench:ro`];

/** Async on purpose: the host-side sink lives in this process and must keep running. */
async function docker(host: string, args: string[]): Promise<string> {
  const p = Bun.spawn(["docker", "-H", host, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`docker ${args.join(" ")} against ${host}: ${err}`);
  return out.trim();
}

/** A bun process (on the host, or inside the peer's namespace with `exec`), its stdout read to the end. */
async function bunRun(exec: string[], script: string, args: string[]): Promise<string> {
  const p = Bun.spawn([...exec, process.execPath, join(scripts, script), ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${script} ${args.join(" ")} failed (${code}): ${err}`);
  return out.trim();
}

/** The host-side sink on `host`: listening once it printed "ready". */
async function startSink(exec: string[], host: string, port: number): Promise<Subprocess> {
  const p = Bun.spawn([...exec, process.execPath, join(scripts, "sink.ts"), host, String(port)], { stdout: "pipe", stderr: "inherit" });
  const reader = p.stdout.getReader();
  const first = await reader.read();
  reader.releaseLock();
  if (!first.value || !new TextDecoder().decode(first.value).includes("ready")) throw new Error(`sink on ${host}:${port} did not start`);
  return p;
}

interface Result {
  toHost: number[];
  toPublished: number[];
  dnsUs: number[];
}
type Metric = keyof Result;

/** A path an engine could not take: its first error, shown instead of a number. */
type Unavailable = Partial<Record<Metric, string>>;

/** One engine with its sink container, published port, network gateway and host-side sink ready. */
interface Setup {
  label: string;
  host: string;
  exec: string[];
  port: number;
  gateway: string;
  /** What the container->host source connects to, and the run options it needs for it. */
  hostTarget: string;
  hostTargetArgs: string[];
  sink?: Subprocess;
  result: Result;
  /** Only for VM mode: a path that failed is noted here and not tried again. */
  unavailable?: Unavailable;
}

/** "not available in VM mode yet (<the daemon's message>)", from a failed step. */
function vmUnavailable(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  // The daemon's own answer, else the error's first line (the CLI's last is only "Run ... --help").
  const msg = /Error response from daemon: (.*)/.exec(text)?.[1] ?? text.trim().split("\n")[0] ?? "";
  return `not available in VM mode yet (${msg.slice(0, 160)})`;
}

/**
 * VM mode's set-up: as setUp, but what fails is noted as unavailable instead of
 * aborting the bench (a half-made set-up is removed again by tearDown).
 */
async function setUpVm(host: string, image: string): Promise<Setup> {
  try {
    return { ...(await setUp("arcbox-vm", host, [], image, true)), unavailable: {} };
  } catch (err) {
    const why = vmUnavailable(err);
    return {
      label: "arcbox-vm",
      host,
      exec: [],
      port: 0,
      gateway: "",
      hostTarget: "",
      hostTargetArgs: [],
      result: { toHost: [], toPublished: [], dnsUs: [] },
      unavailable: { toHost: why, toPublished: why, dnsUs: why },
    };
  }
}

/**
 * `inVm`: the network's gateway is on the engine machine's bridge, not on the host; the
 * host-side sink listens on the host's 127.0.0.1 and the container reaches it as
 * host.docker.internal (host-gateway: the machine bridge's host alias, DNATed to it).
 */
async function setUp(label: string, host: string, exec: string[], image: string, inVm = false): Promise<Setup> {
  await docker(host, ["network", "create", "benchnet"]);
  await docker(host, ["run", "-d", "--name", "sink", "--network", "benchnet", "-p", `127.0.0.1::${SINK_PORT}`, ...mounts, image, "bun", "/bench/sink.ts"]);
  const portLine = (await docker(host, ["port", "sink", String(SINK_PORT)])).split("\n")[0];
  const port = Number(/:(\d+)\s*$/.exec(portLine)![1]);
  await bunRun(exec, "wait-port.ts", ["127.0.0.1", String(port)]);
  const gateway = JSON.parse(await docker(host, ["network", "inspect", "benchnet"]))[0].IPAM.Config[0].Gateway as string;
  const sink = await startSink(exec, inVm ? "127.0.0.1" : gateway, SINK_PORT);
  const hostTarget = inVm ? "host.docker.internal" : gateway;
  const hostTargetArgs = inVm ? ["--add-host", "host.docker.internal:host-gateway"] : [];
  return { label, host, exec, port, gateway, hostTarget, hostTargetArgs, sink, result: { toHost: [], toPublished: [], dnsUs: [] } };
}

async function round(e: Setup, image: string): Promise<void> {
  const steps: Record<Metric, () => Promise<string>> = {
    toHost: () => docker(e.host, ["run", "--rm", "--network", "benchnet", ...e.hostTargetArgs, ...mounts, image, "bun", "/bench/source.ts", e.hostTarget, String(SINK_PORT), String(MIB)]),
    toPublished: () => bunRun(e.exec, "source.ts", ["127.0.0.1", String(e.port), String(MIB)]),
    dnsUs: () => docker(e.host, ["run", "--rm", "--network", "benchnet", ...mounts, image, "bun", "/bench/dns.ts", "sink", String(QUERIES)]),
  };
  for (const [metric, step] of Object.entries(steps) as [Metric, () => Promise<string>][]) {
    if (!e.unavailable) {
      e.result[metric].push(Number(await step()));
      continue;
    }
    if (e.unavailable[metric]) continue;
    try {
      e.result[metric].push(Number(await step()));
    } catch (err) {
      e.unavailable[metric] = vmUnavailable(err);
    }
  }
}

async function tearDown(e: Setup): Promise<void> {
  e.sink?.kill();
  await e.sink?.exited;
  await docker(e.host, ["rm", "-f", "sink"]).catch(() => "");
  await docker(e.host, ["network", "rm", "benchnet"]).catch(() => "");
}

// The registry listens on the peer namespace's host address: Docker reaches it over the
// veth pair, ArcBox as a local address (declared insecure to both, as loopback would be).
const peerNet = createPeerNetns();
const reg = await startRegistry({ hostname: peerNet.hostAddr }).catch((err) => {
  peerNet.remove();
  throw err;
});
const arcbox = new TestDaemon("bench-net-arcbox-", {}, undefined, { engine: "host" });
const vm = WITH_VM ? new TestDaemon("bench-net-arcbox-vm-", {}, undefined, { engine: "vm" }) : undefined;
for (const d of [arcbox, vm]) if (d) writeFileSync(join(d.home, "daemon.json"), JSON.stringify({ "insecure-registries": [reg.host] }));
let engine: DockerEngine | undefined;
const engines: Setup[] = [];
try {
  const image = (await pushBusybox(reg)).reference;
  await vm?.start();
  await arcbox.start();
  await docker(arcbox.dockerHost, ["pull", "-q", image]);
  if (vm) await docker(vm.dockerHost, ["pull", "-q", image]);
  engine = await startDockerd({ networking: true, netns: peerNet, args: ["--insecure-registry", reg.host] });
  await docker(engine.host, ["pull", "-q", image]);
  console.log(`${MIB} MiB per transfer, ${RUNS} runs, ${QUERIES} DNS queries per run`);
  engines.push(await setUp("arcbox", arcbox.dockerHost, [], image));
  engines.push(await setUp("docker", engine.host, engine.netns.exec, image));
  if (vm) engines.push(await setUpVm(vm.dockerHost, image));
  // Rounds alternate between the engines, so drifting load on the host hits both alike.
  for (let i = 0; i < RUNS; i++) for (const e of engines) await round(e, image);
  for (const e of engines) console.log(`${e.label}: container->host ${e.result.toHost.join(", ")} MB/s; host->published ${e.result.toPublished.join(", ")} MB/s; dns ${e.result.dnsUs.join(", ")} us`);
  const [a, d] = [engines[0]!.result, engines[1]!.result];
  const v = engines[2];
  const vmValue = (m: Metric) => (!v ? undefined : (v.unavailable?.[m] ?? (v.result[m].length ? median(v.result[m]) : "no sample")));
  const rows: Row[] = [
    { metric: "TCP container -> host", unit: "MB/s", arcbox: median(a.toHost), docker: median(d.toHost), lowerIsBetter: false, vm: vmValue("toHost") },
    { metric: "TCP host -> published 127.0.0.1", unit: "MB/s", arcbox: median(a.toPublished), docker: median(d.toPublished), lowerIsBetter: false, vm: vmValue("toPublished") },
    { metric: "DNS lookup (container name), p50", unit: "us", arcbox: median(a.dnsUs), docker: median(d.dnsUs), lowerIsBetter: true, vm: vmValue("dnsUs") },
  ];
  printReport("network data paths (median of runs)", rows);
} finally {
  for (const e of engines) await tearDown(e);
  rmSync(scripts, { recursive: true, force: true });
  await arcbox.dispose();
  await vm?.dispose();
  // Stopping the peer and deleting its namespace removes its docker0, veths and rules.
  await engine?.stop();
  peerNet.remove();
  await reg.stop();
}
