/**
 * Network data paths, ArcBox against Docker Engine in the same run:
 *   - TCP throughput container -> host (to the network's gateway address),
 *   - TCP throughput host -> a published port on 127.0.0.1 (Docker: docker-proxy;
 *     ArcBox: DNAT in the kernel),
 *   - embedded DNS lookup latency for a container name, from a container.
 * Both engines run the same busybox image with the host's bun bind-mounted in as the
 * traffic source/sink (busybox nc is too slow to measure a network path).
 * Docker runs with its own roots, socket and bridge IP (172.31.250.1/24); its bridge and
 * iptables chains are removed afterwards.
 * Rounds alternate between the engines; medians are reported.
 * Usage: bun bench/net.ts [--mib N] [--runs N] [--queries N]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startDockerd } from "./lib/dockerd.ts";
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

const scripts = mkdtempSync(join(tmpdir(), "bench-net-"));
writeFileSync(join(scripts, "sink.ts"), `Bun.listen({ hostname: "0.0.0.0", port: ${SINK_PORT}, socket: { data() {}, end(s) { s.write("k"); s.end(); } } });\n`);
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

const mounts = [
  "-v", "/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro",
  "-v", "/lib64:/lib64:ro",
  "-v", `${process.execPath}:/usr/local/bin/bun:ro`,
  "-v", `${scripts}:/bench:ro`,
];

/** Async on purpose: the host-side sink lives in this process and must keep running. */
async function docker(host: string, args: string[]): Promise<string> {
  const p = Bun.spawn(["docker", "-H", host, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`docker ${args.join(" ")} against ${host}: ${err}`);
  return out.trim();
}

/** A host-side sink: counts bytes and closes when the sender is done. */
function hostSink(): { port: number; stop(): void } {
  // The sender learns that everything arrived from the "k" sent back after its FIN.
  const l = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { data() {}, end(s) { s.write("k"); s.end(); } } });
  return { port: l.port, stop: () => l.stop(true) };
}

async function waitConnectable(port: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ok = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, open(s) { s.end(); } } }).then(() => true, () => false);
    if (ok) return;
    await Bun.sleep(50);
  }
  throw new Error(`port ${port} never answered`);
}

interface Result { toHost: number[]; toPublished: number[]; dnsUs: number[] }

/** One engine with its sink container, published port and network gateway ready. */
interface Setup { label: string; host: string; port: number; gateway: string; result: Result }

async function setUp(label: string, host: string, image: string): Promise<Setup> {
  await docker(host, ["network", "create", "benchnet"]);
  await docker(host, ["run", "-d", "--name", "sink", "--network", "benchnet", "-p", `127.0.0.1::${SINK_PORT}`, ...mounts, image, "bun", "/bench/sink.ts"]);
  const portLine = (await docker(host, ["port", "sink", String(SINK_PORT)])).split("\n")[0];
  const port = Number(/:(\d+)\s*$/.exec(portLine)![1]);
  await waitConnectable(port);
  const gateway = JSON.parse(await docker(host, ["network", "inspect", "benchnet"]))[0].IPAM.Config[0].Gateway as string;
  return { label, host, port, gateway, result: { toHost: [], toPublished: [], dnsUs: [] } };
}

async function round(e: Setup, image: string, sinkPort: number): Promise<void> {
  e.result.toHost.push(Number(await docker(e.host, ["run", "--rm", "--network", "benchnet", ...mounts, image, "bun", "/bench/source.ts", e.gateway, String(sinkPort), String(MIB)])));
  const p = Bun.spawn([process.execPath, join(scripts, "source.ts"), "127.0.0.1", String(e.port), String(MIB)], { stdout: "pipe" });
  e.result.toPublished.push(Number((await new Response(p.stdout).text()).trim()));
  e.result.dnsUs.push(Number(await docker(e.host, ["run", "--rm", "--network", "benchnet", ...mounts, image, "bun", "/bench/dns.ts", "sink", String(QUERIES)])));
}

async function tearDown(host: string): Promise<void> {
  await docker(host, ["rm", "-f", "sink"]).catch(() => "");
  await docker(host, ["network", "rm", "benchnet"]).catch(() => "");
}

/** dockerd leaves docker0, its chains and a DROP policy on FORWARD behind: undo all of it. */
function cleanDockerNetworking(forwardPolicy: string): void {
  const nat = ["DOCKER"];
  const filter = ["DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER"];
  const saved = Bun.spawnSync(["iptables-save"]).stdout.toString();
  const jumps = saved.split("\n").filter((l) => /^-A (PREROUTING|OUTPUT|POSTROUTING|FORWARD) .*(DOCKER|docker0)/.test(l));
  for (const j of jumps) {
    const table = /^-A (PREROUTING|OUTPUT|POSTROUTING)/.test(j) && !j.includes("-A FORWARD") ? "nat" : "filter";
    Bun.spawnSync(["sh", "-c", `iptables -t ${table} ${j.replace(/^-A/, "-D")}`]);
  }
  for (const c of nat) Bun.spawnSync(["sh", "-c", `iptables -t nat -F ${c} && iptables -t nat -X ${c}`]);
  for (const c of filter) Bun.spawnSync(["sh", "-c", `iptables -F ${c} && iptables -X ${c}`]);
  Bun.spawnSync(["iptables", "-P", "FORWARD", forwardPolicy]);
  Bun.spawnSync(["ip", "link", "del", "docker0"]);
}

if (process.argv.includes("--clean-docker")) {
  cleanDockerNetworking("ACCEPT");
  process.exit(0);
}
const forwardPolicy = /:FORWARD (\w+)/.exec(Bun.spawnSync(["iptables-save", "-t", "filter"]).stdout.toString())?.[1] ?? "ACCEPT";
const reg = await startRegistry();
const arcbox = new TestDaemon("bench-net-arcbox-");
let engine: Awaited<ReturnType<typeof startDockerd>> | undefined;
try {
  const image = (await pushBusybox(reg)).reference;
  await arcbox.start();
  await docker(arcbox.dockerHost, ["pull", "-q", image]);
  engine = await startDockerd({ networking: true, args: ["--bip", "172.31.250.1/24", "--default-address-pool", "base=172.30.0.0/16,size=24"] });
  await docker(engine.host, ["pull", "-q", image]);
  console.log(`${MIB} MiB per transfer, ${RUNS} runs, ${QUERIES} DNS queries per run`);
  const sink = hostSink();
  const engines = [await setUp("arcbox", arcbox.dockerHost, image), await setUp("docker", engine.host, image)];
  try {
    // Rounds alternate between the engines, so drifting load on the host hits both alike.
    for (let i = 0; i < RUNS; i++) for (const e of engines) await round(e, image, sink.port);
  } finally {
    sink.stop();
    for (const e of engines) await tearDown(e.host);
  }
  for (const e of engines) console.log(`${e.label}: container->host ${e.result.toHost.join(", ")} MB/s; host->published ${e.result.toPublished.join(", ")} MB/s; dns ${e.result.dnsUs.join(", ")} us`);
  const [a, d] = [engines[0].result, engines[1].result];
  const rows: Row[] = [
    { metric: "TCP container -> host", unit: "MB/s", arcbox: median(a.toHost), docker: median(d.toHost), lowerIsBetter: false },
    { metric: "TCP host -> published 127.0.0.1", unit: "MB/s", arcbox: median(a.toPublished), docker: median(d.toPublished), lowerIsBetter: false },
    { metric: "DNS lookup (container name), p50", unit: "us", arcbox: median(a.dnsUs), docker: median(d.dnsUs), lowerIsBetter: true },
  ];
  printReport("network data paths (median of runs)", rows);
} finally {
  rmSync(scripts, { recursive: true, force: true });
  await arcbox.dispose();
  if (engine) {
    await engine.stop();
    cleanDockerNetworking(forwardPolicy);
  }
  await reg.stop();
}
