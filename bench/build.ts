/**
 * docker build (classic builder, DOCKER_BUILDKIT=0), ArcBox against Docker Engine in
 * the same run, with the real docker CLI: a ~10-step Dockerfile with a COPY of 2,000
 * files and a few RUNs, built cold (--no-cache) and then again from the cache. RUN
 * steps use --network none on both (the Docker peer runs without a bridge). Runs
 * alternate between the engines so background noise hits both alike.
 * The same builds are also sent straight to POST /build (the context tar made once,
 * no CLI): the docker CLI spends about a second walking and sending the context, the
 * same for both engines, which hides how much work each engine does.
 * Usage: bun bench/build.ts [--runs N] [--files N]
 * Goal: ArcBox at most 0.5x Docker Engine's time cold and 0.33x cached.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPeerNetns, startDockerd } from "./lib/dockerd.ts";
import { median, printReport, type Row } from "./lib/report.ts";
import { TestDaemon } from "../tests/helpers/daemon.ts";
import { startRegistry } from "../tests/helpers/registry.ts";
import { pushBusybox } from "../tests/helpers/test-images.ts";

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const RUNS = flag("runs", 3);
const FILES = flag("files", 2000);

async function docker(host: string, args: string[]): Promise<{ ms: number; code: number; out: string; err: string }> {
  const t = performance.now();
  const p = Bun.spawn(["docker", "-H", host, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, DOCKER_BUILDKIT: "0" } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { ms: performance.now() - t, code, out, err };
}

async function must(host: string, args: string[]): Promise<{ ms: number; out: string }> {
  const r = await docker(host, args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.err}`);
  return r;
}

function makeContext(image: string): string {
  const dir = mkdtempSync(join(tmpdir(), "bench-build-ctx-"));
  for (let i = 0; i < FILES; i++) {
    const sub = join(dir, "files", `d${i % 20}`);
    if (i < 20) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.txt`), `file ${i} `.repeat(1 + (i % 50)));
  }
  writeFileSync(join(dir, "extra.txt"), "extra\n");
  writeFileSync(
    join(dir, "Dockerfile"),
    `FROM ${image}
ENV APP=/app
WORKDIR /app
COPY files/ ./files/
RUN find /app/files -type f | wc -l > /count
RUN echo built > /built && mkdir -p /var/cache/app && cp /count /var/cache/app/
COPY extra.txt /etc/extra.txt
LABEL bench=build
RUN cat /count /etc/extra.txt
CMD ["cat", "/count"]
`,
  );
  return dir;
}

async function apiBuild(socket: string, tar: Uint8Array, nocache: boolean): Promise<{ ms: number; body: string }> {
  const t = performance.now();
  const res = await fetch(`http://d/build?t=bench:api&networkmode=none${nocache ? "&nocache=1" : ""}`, {
    method: "POST",
    body: tar,
    headers: { "Content-Type": "application/x-tar" },
    unix: socket,
  } as RequestInit);
  const body = await res.text();
  if (res.status !== 200 || body.includes('"errorDetail"')) throw new Error(`POST /build failed (${res.status}): ${body.slice(-500)}`);
  return { ms: performance.now() - t, body };
}

const peerNet = createPeerNetns();
const reg = await startRegistry({ hostname: peerNet.hostAddr }).catch((err) => {
  peerNet.remove();
  throw err;
});
const image = (await pushBusybox(reg)).reference;
const ctx = makeContext(image);
const arcbox = new TestDaemon("bench-build-");
writeFileSync(join(arcbox.home, "daemon.json"), JSON.stringify({ "insecure-registries": [reg.host] }));
let engine: Awaited<ReturnType<typeof startDockerd>> | undefined;
try {
  await arcbox.start();
  engine = await startDockerd({ netns: peerNet, args: ["--insecure-registry", reg.host] });
  const hosts = { arcbox: arcbox.dockerHost, docker: engine.host };
  for (const host of Object.values(hosts)) await must(host, ["pull", "-q", image]);
  const samples = { cold: { arcbox: [] as number[], docker: [] as number[] }, cached: { arcbox: [] as number[], docker: [] as number[] } };
  for (let i = 0; i < RUNS; i++) {
    for (const [name, host] of Object.entries(hosts) as [keyof typeof hosts, string][]) {
      const cold = await must(host, ["build", "--no-cache", "--network", "none", "-t", "bench:build", ctx]);
      const cached = await must(host, ["build", "--network", "none", "-t", "bench:build", ctx]);
      const hits = cached.out.split("\n").filter((l) => l.trim() === "---> Using cache").length;
      if (hits < 8) throw new Error(`${name}: the cached build used the cache for ${hits} steps only:\n${cached.out}`);
      const check = await must(host, ["run", "--rm", "--network", "none", "bench:build"]);
      if (check.out.trim() !== String(FILES)) throw new Error(`${name}: the image counts ${check.out.trim()} files, not ${FILES}`);
      samples.cold[name].push(cold.ms);
      samples.cached[name].push(cached.ms);
      console.log(`run ${i + 1} ${name}: cold ${cold.ms.toFixed(0)} ms, cached ${cached.ms.toFixed(0)} ms`);
    }
  }
  const tar = Bun.spawnSync(["tar", "-C", ctx, "-cf", "-", "."]).stdout;
  const sockets = { arcbox: arcbox.socket, docker: engine.socket };
  const api = { cold: { arcbox: [] as number[], docker: [] as number[] }, cached: { arcbox: [] as number[], docker: [] as number[] } };
  for (let i = 0; i < RUNS; i++) {
    for (const [name, socket] of Object.entries(sockets) as [keyof typeof sockets, string][]) {
      const cold = await apiBuild(socket, tar, true);
      const cached = await apiBuild(socket, tar, false);
      if ((cached.body.match(/Using cache/g) ?? []).length < 8) throw new Error(`${name}: the cached API build missed the cache`);
      api.cold[name].push(cold.ms);
      api.cached[name].push(cached.ms);
      console.log(`api run ${i + 1} ${name}: cold ${cold.ms.toFixed(0)} ms, cached ${cached.ms.toFixed(0)} ms`);
    }
  }
  const rows: Row[] = [
    { metric: `docker build, cold (--no-cache, COPY of ${FILES} files)`, unit: "ms", arcbox: median(samples.cold.arcbox), docker: median(samples.cold.docker), lowerIsBetter: true },
    { metric: "docker build, cached (every step from the cache)", unit: "ms", arcbox: median(samples.cached.arcbox), docker: median(samples.cached.docker), lowerIsBetter: true },
    { metric: "POST /build (no CLI), cold", unit: "ms", arcbox: median(api.cold.arcbox), docker: median(api.cold.docker), lowerIsBetter: true },
    { metric: "POST /build (no CLI), cached", unit: "ms", arcbox: median(api.cached.arcbox), docker: median(api.cached.docker), lowerIsBetter: true },
  ];
  printReport(`docker build, classic builder (median of ${RUNS} runs)`, rows);
  const goals = [0.5, 1 / 3, 0.5, 1 / 3];
  for (const [i, r] of rows.entries()) {
    console.log(`${r.metric}: ratio ${(r.arcbox / r.docker).toFixed(3)} ${r.arcbox / r.docker <= goals[i]! ? "meets" : "misses"} the goal (<= ${goals[i]!.toFixed(2)})`);
  }
} finally {
  await arcbox.dispose();
  await engine?.stop();
  await reg.stop();
  peerNet.remove();
  rmSync(ctx, { recursive: true, force: true });
}
