/**
 * VirtioFS data path: ArcBox's arcbox-virtiofsd against Debian's virtiofsd
 * (/usr/lib/qemu/virtiofsd), in one VM (same kernel, same qemu, each mounted as its own
 * virtio-fs device over sibling directories of the same host filesystem), in one run:
 *   - sequential write (dd conv=fsync) and read (guest page cache dropped first),
 *   - random 4 KiB reads,
 *   - create + stat + unlink of many small files,
 *   - tar -x of a generated source-like tree, and find over it.
 * Both servers run with cache=auto. A warm-up round comes first and is not counted (TCG
 * translates guest code the first time it runs, which would tax whichever server went
 * first); then rounds alternate the order and medians are reported.
 * The same work on the host's own filesystem (no VM) is printed for reference: under
 * TCG the guest's CPU, not the file server, bounds most rows, so sizes default small.
 * A second table takes the guest out: a minimal vhost-user front-end
 * (tests/helpers/virtiofs/frontend.c) sends each server the requests a guest would —
 * GETATTR round trips, a small file's life (LOOKUP miss, CREATE, WRITE 4 KiB, FLUSH,
 * RELEASE, GETATTR, UNLINK, FORGET) and 1 MiB READs — so the servers' own cost shows.
 * Usage: bun bench/fs.ts [--mib N] [--rand N] [--small N] [--tree N] [--runs N]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Subprocess } from "bun";
import { median } from "./lib/report.ts";
import { bootGuest, startVirtiofsd, virtiofsGuest } from "../tests/helpers/virtiofs-vm.ts";

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg("--mib", 64);
const RAND = arg("--rand", 2000);
const SMALL = arg("--small", 500);
const TREE = arg("--tree", 2000);
const RUNS = arg("--runs", 2);
const SERVERS = ["arcbox", "debian"] as const;
type Server = (typeof SERVERS)[number];

const root = mkdtempSync("/tmp/arcbox-bench-fs-");
const procs: Subprocess[] = [];

/** A tree like a source checkout: TREE small files over nested directories, as a tarball. */
function makeTree(dir: string): void {
  const src = join(root, "tree-src");
  for (let i = 0; i < TREE; i++) {
    const d = join(src, "pkg", `m${i % 40}`, `sub${i % 7}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `file${i}.ts`), `export const v${i} = ${i};\n`.repeat(1 + (i % 20)));
  }
  const r = Bun.spawnSync(["tar", "-cf", join(dir, "tree.tar"), "-C", src, "pkg"]);
  if (r.exitCode !== 0) throw new Error("tar -c failed");
  rmSync(src, { recursive: true, force: true });
}

const guestScript = (order: Server[][]) => `
mkdir -p /mnt/arcbox /mnt/debian
mount -t virtiofs arcbox /mnt/arcbox && mount -t virtiofs debian /mnt/debian || { echo MOUNT-FAILED; exit 1; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
timed() { m=$1 s=$2; shift 2; drop; t0=$(probe now); "$@" >/dev/null 2>&1 || echo "ERR $s $m"; t1=$(probe now); echo "T $s $m $((t1 - t0))"; }
round() {
  for s in "$@"; do D=/mnt/$s/work; rm -rf $D; mkdir -p $D/x $D/small
    timed seqwrite $s dd if=/dev/zero of=$D/seq bs=1M count=${MIB} conv=fsync
    timed seqread $s dd if=$D/seq of=/dev/null bs=1M
    drop; echo "V $s randread $(probe randread $D/seq ${RAND})"
    echo "V $s smallfiles $(probe smallfiles $D/small ${SMALL})"
    timed tar $s tar -xf /mnt/$s/tree.tar -C $D/x
    timed find $s find $D/x
    rm -rf $D
  done
}
${order.map((o, i) => `echo ROUND ${i}; round ${o.join(" ")}`).join("\n")}
echo BENCH-DONE
`;

interface Result { seqwrite: number[]; seqread: number[]; randread: number[]; smallfiles: number[]; tar: number[]; find: number[] }
const empty = (): Result => ({ seqwrite: [], seqread: [], randread: [], smallfiles: [], tar: [], find: [] });

/** Round 0 is a warm-up (TCG translates the guest's code paths the first time they run): skipped. */
function parse(lines: string[], into: Record<Server, Result>): void {
  let round = -1;
  for (const l of lines) {
    const r0 = /^ROUND (\d+)$/.exec(l);
    if (r0) round = Number(r0[1]);
    if (round < 1) continue;
    const t = /^T (\w+) (\w+) (\d+)$/.exec(l);
    const v = /^V (\w+) (\w+) ([\d.]+)$/.exec(l);
    if (l.startsWith("ERR") || l.startsWith("probe:")) throw new Error(`guest: ${l}`);
    const m = t ?? v;
    if (!m) continue;
    const r = into[m[1] as Server][m[2] as keyof Result];
    const secs = Number(m[3]) / 1e9;
    if (v) r.push(Number(m[3]));
    else if (m[2] === "seqwrite" || m[2] === "seqread") r.push(MIB / secs);
    else r.push(TREE / secs);
  }
}

/** The same work on the host's filesystem, no VM (the host's page cache stays warm). */
async function native(probe: string): Promise<Result> {
  const out = empty();
  const D = join(root, "native");
  const sh = (cmd: string[]) => {
    const t0 = performance.now();
    const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
    return { secs: (performance.now() - t0) / 1000, out: r.stdout.toString().trim() };
  };
  for (let i = 0; i < RUNS; i++) {
    rmSync(D, { recursive: true, force: true });
    mkdirSync(join(D, "x"), { recursive: true });
    mkdirSync(join(D, "small"));
    out.seqwrite.push(MIB / sh(["dd", "if=/dev/zero", `of=${D}/seq`, "bs=1M", `count=${MIB}`, "conv=fsync"]).secs);
    out.seqread.push(MIB / sh(["dd", `if=${D}/seq`, "of=/dev/null", "bs=1M"]).secs);
    out.randread.push(Number(sh([probe, "randread", `${D}/seq`, String(RAND)]).out));
    out.smallfiles.push(Number(sh([probe, "smallfiles", `${D}/small`, String(SMALL)]).out));
    out.tar.push(TREE / sh(["tar", "-xf", join(root, "arcbox", "tree.tar"), "-C", `${D}/x`]).secs);
    out.find.push(TREE / sh(["find", `${D}/x`]).secs);
  }
  rmSync(D, { recursive: true, force: true });
  return out;
}

/** Server-only rows: each round starts a fresh server (Debian's serves one connection). */
async function serverOnly(frontend: string): Promise<Record<Server, Record<string, number[]>>> {
  const out: Record<Server, Record<string, number[]>> = { arcbox: {}, debian: {} };
  const dir = join(root, "server-only");
  mkdirSync(dir);
  writeFileSync(join(dir, "big"), new Uint8Array(64 << 20));
  for (let i = 0; i < RUNS + 1; i++) {
    for (const s of i % 2 ? [...SERVERS].reverse() : SERVERS) {
      const sock = join(root, `so-${s}-${i}.sock`);
      const p = await startVirtiofsd(s === "arcbox" ? { socket: sock, dir } : { socket: sock, dir,
        binary: ["/usr/lib/qemu/virtiofsd", `--socket-path=${sock}`, "-o", `source=${dir}`, "-o", "cache=auto", "-o", "log_level=err"] });
      const r = Bun.spawnSync([frontend, sock, "init", "bench-getattr:20000", "bench-files:500", "lookup:1:big", "bench-read:$3:64"], { stdout: "pipe", stderr: "pipe" });
      p.kill();
      await p.exited;
      for (const m of r.stdout.toString().matchAll(/^(bench-\w+) ok rate=([\d.]+)$/gm)) (out[s][m[1]!] ??= []).push(Number(m[2]));
      if (r.exitCode !== 0) throw new Error(`frontend against ${s}: ${r.stderr}`);
    }
  }
  return out;
}

try {
  const g = await virtiofsGuest();
  for (const s of SERVERS) {
    mkdirSync(join(root, s));
    makeTree(join(root, s));
  }
  procs.push(await startVirtiofsd({ socket: join(root, "arcbox.sock"), dir: join(root, "arcbox"), cache: "auto" }));
  procs.push(await startVirtiofsd({
    socket: join(root, "debian.sock"), dir: join(root, "debian"),
    binary: ["/usr/lib/qemu/virtiofsd", `--socket-path=${join(root, "debian.sock")}`, "-o", `source=${join(root, "debian")}`, "-o", "cache=auto", "-o", "log_level=err"],
  }));
  const order = Array.from({ length: RUNS + 1 }, (_, i) => (i % 2 ? [...SERVERS].reverse() : [...SERVERS]));
  const results: Record<Server, Result> = { arcbox: empty(), debian: empty() };
  const t0 = Date.now();
  const run = await bootGuest({ shares: SERVERS.map((s) => ({ tag: s, socket: join(root, `${s}.sock`) })), script: guestScript(order), memMiB: 512, timeoutMs: 1_800_000 });
  if (!run.output.includes("BENCH-DONE")) throw new Error(`the guest did not finish:\n${run.output}`);
  parse(run.lines, results);
  const vmSecs = (Date.now() - t0) / 1000;
  const host = await native(g.probe);

  const rows: [keyof Result, string, string][] = [
    ["seqwrite", `sequential write ${MIB} MiB`, "MiB/s"], ["seqread", `sequential read ${MIB} MiB`, "MiB/s"],
    ["randread", "random 4 KiB reads", "ops/s"], ["smallfiles", `create+stat+unlink ${SMALL} files`, "ops/s"],
    ["tar", `tar -x ${TREE} files`, "files/s"], ["find", `find over ${TREE} files`, "files/s"],
  ];
  console.log(`\nVirtioFS (TCG guest, cache=auto; warm-up + ${RUNS} rounds, medians; VM phase ${vmSecs.toFixed(0)} s). Higher is better.`);
  console.log(`${"metric".padEnd(34)}${"arcbox".padStart(14)}${"virtiofsd".padStart(14)}${"ratio".padStart(8)}${"host native".padStart(16)}${"arcbox/native".padStart(15)}`);
  for (const [k, label, unit] of rows) {
    const a = median(results.arcbox[k]), d = median(results.debian[k]), n = median(host[k]);
    const f = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ${unit}`;
    console.log(`${label.padEnd(34)}${f(a).padStart(14)}${f(d).padStart(14)}${(a / d).toFixed(2).padStart(7)}x${f(n).padStart(16)}${((100 * a) / n).toFixed(1).padStart(14)}%`);
  }
  const so = await serverOnly(join(dirname(g.probe), "frontend"));
  console.log(`\nServers alone (no guest: a C vhost-user front-end sends the requests; ${RUNS + 1} rounds, medians). Higher is better.`);
  console.log(`${"metric".padEnd(34)}${"arcbox".padStart(14)}${"virtiofsd".padStart(14)}${"ratio".padStart(8)}`);
  for (const [k, label, unit] of [["bench-getattr", "GETATTR round trips", "ops/s"], ["bench-files", "small file life (8 requests)", "files/s"], ["bench-read", "1 MiB READs (page cache)", "MiB/s"]] as const) {
    const a = median(so.arcbox[k] ?? [NaN]), d = median(so.debian[k] ?? [NaN]);
    console.log(`${label.padEnd(34)}${`${a.toFixed(0)} ${unit}`.padStart(14)}${`${d.toFixed(0)} ${unit}`.padStart(14)}${(a / d).toFixed(2).padStart(7)}x`);
  }
} finally {
  for (const p of procs) p.kill();
  rmSync(root, { recursive: true, force: true });
}
