/**
 * Default: cold pull plus the first `docker run --rm IMAGE true`, for a one-layer
 * distro-like image (busybox plus ~5.5k files / ~70 MB of the host's Perl and Python
 * libraries, close to Debian minbase's 4.2k files / 83 MB) and for the same content
 * split into many layers, ArcBox against Docker Engine in the same run, with each
 * engine's disk use afterwards (ArcBox: data/imaged; Docker: its data root).
 * Usage: bun bench/pull.ts [--runs N] [--split N]
 *
 * --bulk: cold pull of a multi-layer image (random, incompressible layers; 4 x 28 MiB by
 * default) from a local registry, ArcBox against Docker Engine in the same run, until
 * the image is usable (the pull command returns once layers are unpacked).
 * Each round starts both engines with empty stores and warms each with `docker images`
 * (which starts ArcBox's lazily started imaged); that first-call cost is reported apart.
 * With --files N, one more layer holds N small files (a distro-like tree), to measure
 * per-file unpacking cost as well as bulk throughput.
 * Docker runs in a network namespace of its own (bench/lib/dockerd.ts); the registry
 * listens on that namespace's host-side veth address, which Docker reaches over the veth
 * pair and ArcBox as a local address (both told it is insecure, as loopback would be).
 * Usage: bun bench/pull.ts --bulk [--runs N] [--layers N] [--layer-mib N] [--files N]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPeerNetns, startDockerd } from "./lib/dockerd.ts";
import { median, printReport } from "./lib/report.ts";
import { TestDaemon } from "../tests/helpers/daemon.ts";
import { startRegistry } from "../tests/helpers/registry.ts";
import { buildBusyboxRootfs, pushImage, rawTar } from "../tests/helpers/test-images.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("--runs", 3);
const LAYERS = arg("--layers", 4);
const LAYER_MIB = arg("--layer-mib", 28);
const FILES = arg("--files", 0);
const SPLIT = arg("--split", 20);
const BULK = process.argv.includes("--bulk");
const DISTRO_TREES = ["usr/share/perl", "usr/lib/python3"];

function tarOf(argv: string[]): Uint8Array {
  const p = Bun.spawnSync(["tar", "--numeric-owner", "--owner=0", "--group=0", "-cf", "-", ...argv]);
  if (p.exitCode !== 0) throw new Error(`tar failed: ${p.stderr}`);
  return p.stdout;
}

/** One layer with busybox and the distro-like tree; and the same split into `n` layers. */
function distroLayers(n: number): { one: Uint8Array[]; many: Uint8Array[] } {
  const bb = mkdtempSync(join(tmpdir(), "bench-pull-bb-"));
  try {
    buildBusyboxRootfs(bb);
    const one = [tarOf(["-C", bb, ".", "-C", "/", ...DISTRO_TREES])];
    const paths = Bun.spawnSync(["find", ...DISTRO_TREES], { cwd: "/" })
      .stdout.toString()
      .trim()
      .split("\n");
    const per = Math.ceil(paths.length / (n - 1));
    const many = [tarOf(["-C", bb, "."])];
    for (let i = 0; i < paths.length; i += per) {
      const list = join(bb, "..", `bench-pull-list-${process.pid}`);
      writeFileSync(list, paths.slice(i, i + per).join("\n"));
      many.push(tarOf(["-C", "/", "--no-recursion", "-T", list]));
      rmSync(list);
    }
    return { one, many };
  } finally {
    rmSync(bb, { recursive: true, force: true });
  }
}

async function timedPullRun(host: string, ref: string): Promise<number> {
  const t0 = performance.now();
  for (const argv of [
    ["pull", "-q", ref],
    ["run", "--rm", "--network", "none", ref, "true"],
  ]) {
    const p = Bun.spawn(["docker", "-H", host, ...argv], { stdout: "pipe", stderr: "pipe" });
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    if (code !== 0) throw new Error(`docker ${argv[0]} against ${host} failed: ${err}`);
  }
  return performance.now() - t0;
}

function duMiB(path: string): number {
  const p = Bun.spawnSync(["du", "-sb", "-x", path]);
  return Number(p.stdout.toString().split("\t")[0]) / (1 << 20);
}

/** Pull + first run of each image, `RUNS` times on fresh engines. */
async function firstRunBench(reg: Awaited<ReturnType<typeof startRegistry>>, peerNet: ReturnType<typeof createPeerNetns>): Promise<void> {
  console.log(`building the distro-like image (one layer, and split into ${SPLIT} layers)...`);
  const { one, many } = distroLayers(SPLIT);
  const images = [
    { label: `1 layer`, img: await pushImage(reg, "bench/distro", "one", { layers: one }), layers: one },
    { label: `${many.length} layers`, img: await pushImage(reg, "bench/distro", "many", { layers: many }), layers: many },
  ];
  for (const { label, img, layers } of images) {
    const mib = layers.reduce((n, l) => n + l.length, 0) / (1 << 20);
    const arcboxMs: number[] = [];
    const dockerMs: number[] = [];
    const arcboxDisk: number[] = [];
    const dockerDisk: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const daemon = new TestDaemon("bench-pull-arcbox-");
      writeFileSync(join(daemon.home, "daemon.json"), JSON.stringify({ "insecure-registries": [reg.host] }));
      await daemon.start();
      try {
        await timedImages(daemon.dockerHost);
        arcboxMs.push(await timedPullRun(daemon.dockerHost, img.reference));
        arcboxDisk.push(duMiB(join(daemon.home, "data", "imaged")));
      } finally {
        await daemon.dispose();
      }
      const engine = await startDockerd({ netns: peerNet, args: ["--insecure-registry", reg.host] });
      try {
        await timedImages(engine.host);
        dockerMs.push(await timedPullRun(engine.host, img.reference));
        dockerDisk.push(duMiB(join(engine.root, "data")));
      } finally {
        await engine.stop();
      }
      console.log(`${label} run ${run + 1}: arcbox ${arcboxMs[run]!.toFixed(0)} ms, docker ${dockerMs[run]!.toFixed(0)} ms`);
    }
    printReport(`cold pull + first run, ${label} (${mib.toFixed(0)} MiB uncompressed) (median of ${RUNS})`, [
      { metric: "pull + docker run --rm IMAGE true", unit: "ms", arcbox: median(arcboxMs), docker: median(dockerMs), lowerIsBetter: true },
      { metric: "disk use after", unit: "MiB", arcbox: median(arcboxDisk), docker: median(dockerDisk), lowerIsBetter: true },
    ]);
  }
}

function manyFilesLayer(n: number): Uint8Array {
  const entries: Parameters<typeof rawTar>[0] = [];
  for (let i = 0; i < n; i++) {
    if (i % 100 === 0) entries.push({ name: `usr/share/d${i / 100}/`, type: "5" });
    entries.push({ name: `usr/share/d${Math.floor(i / 100)}/f${i}.txt`, data: `file ${i} `.repeat(30) });
  }
  return rawTar(entries);
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

async function timedPull(host: string, ref: string): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(["docker", "-H", host, "pull", "-q", ref], { stdout: "pipe", stderr: "pipe" });
  const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`pull against ${host} failed: ${err}`);
  return ms;
}

/** `docker images` on a fresh engine: for ArcBox this includes starting imaged. */
async function timedImages(host: string): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(["docker", "-H", host, "images", "-q"], { stdout: "ignore", stderr: "ignore" });
  await p.exited;
  return performance.now() - t0;
}

async function usable(host: string, ref: string): Promise<void> {
  const p = Bun.spawnSync(["docker", "-H", host, "image", "inspect", "--format", "{{len .RootFS.Layers}}", ref]);
  if (p.stdout.toString().trim() !== String(LAYERS + (FILES > 0 ? 1 : 0))) throw new Error(`image not usable on ${host}`);
}

async function bulkBench(reg: Awaited<ReturnType<typeof startRegistry>>, peerNet: ReturnType<typeof createPeerNetns>): Promise<void> {
  console.log(`building ${LAYERS} x ${LAYER_MIB} MiB random layers...`);
  const layers = Array.from({ length: LAYERS }, (_, i) => rawTar([{ name: `data/layer-${i}.bin`, data: randomBytes(LAYER_MIB << 20) }]));
  if (FILES > 0) layers.push(manyFilesLayer(FILES));
  const img = await pushImage(reg, "bench/big", "v1", { layers });
  const totalMiB = layers.reduce((n, l) => n + l.length, 0) / (1 << 20);
  console.log(`pushed ${img.reference} (${totalMiB.toFixed(0)} MiB in ${layers.length} gzip layers${FILES ? `, one of ${FILES} files` : ""})`);

  const arcboxMs: number[] = [];
  const lazyStartMs: number[] = [];
  const dockerMs: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const daemon = new TestDaemon("bench-pull-arcbox-");
    writeFileSync(join(daemon.home, "daemon.json"), JSON.stringify({ "insecure-registries": [reg.host] }));
    await daemon.start();
    try {
      lazyStartMs.push(await timedImages(daemon.dockerHost));
      arcboxMs.push(await timedPull(daemon.dockerHost, img.reference));
      await usable(daemon.dockerHost, img.reference);
    } finally {
      await daemon.dispose();
    }
    const engine = await startDockerd({ netns: peerNet, args: ["--insecure-registry", reg.host] });
    try {
      await timedImages(engine.host);
      dockerMs.push(await timedPull(engine.host, img.reference));
      await usable(engine.host, img.reference);
    } finally {
      await engine.stop();
    }
    console.log(`run ${run + 1}: arcbox ${arcboxMs[run]!.toFixed(0)} ms, docker ${dockerMs[run]!.toFixed(0)} ms`);
  }
  printReport(`cold pull of ${totalMiB.toFixed(0)} MiB in ${layers.length} layers${FILES ? ` (${FILES} small files in one)` : ""} (median of ${RUNS})`, [
    { metric: "cold pull until usable", unit: "ms", arcbox: median(arcboxMs), docker: median(dockerMs), lowerIsBetter: true },
    { metric: "throughput", unit: "MiB/s", arcbox: totalMiB / (median(arcboxMs) / 1000), docker: totalMiB / (median(dockerMs) / 1000), lowerIsBetter: false },
  ]);
  console.log(`first image call on a fresh ArcBox daemon (lazy imaged start): ${median(lazyStartMs).toFixed(0)} ms median`);
}

const peerNet = createPeerNetns();
const reg = await startRegistry({ hostname: peerNet.hostAddr }).catch((err) => {
  peerNet.remove();
  throw err;
});
try {
  if (!BULK) await firstRunBench(reg, peerNet);
  else await bulkBench(reg, peerNet);
} finally {
  await reg.stop();
  peerNet.remove();
}
