/**
 * VirtioFS data path: ArcBox's arcbox-virtiofsd against Debian's virtiofsd
 * (/usr/lib/qemu/virtiofsd), in one VM (same kernel, same qemu, same
 * `vhost-user-fs-device` options: one request queue + hiprio, queue size 128), both
 * serving the SAME host directory, each mounted as its own virtio-fs device. Rows:
 *   - sequential write (dd bs=1M conv=fsync) and read (guest page cache dropped first),
 *   - random 4 KiB reads (pread at random aligned offsets of the sequential file),
 *   - create + stat + unlink of small files (100 bytes each),
 *   - tar -x of a generated source-like tree, and find over it (guest caches dropped),
 *   - in parallel: 4 random readers of the sequential file; a build-like mix of 3
 *     small-file writers (create+stat+unlink) beside one process writing and fsyncing files.
 * Cache modes: ours runs with its default (`auto`), Debian's with its default
 * (`cache=auto`): the same contract (1 s entry/attr timeouts, page cache kept while
 * size/mtime do not change), and neither enables the writeback cache. xattrs: both serve
 * them (the peer gets `-o xattr`; --peer-defaults leaves it at its no_xattr default).
 * Fairness on a loaded 2-core host: the rounds are split over two boots with the two
 * devices in opposite order (with Debian's server on BOTH devices, --calibrate debian,
 * tar on the first device came out at 0.81x of the second at load ~19: bias or noise, a
 * fixed order must not decide a row); each boot starts with a small warm-up round that is not counted
 * (TCG translates guest code the first time it runs, which would tax whichever server
 * went first); then, inside every round, each row runs on both servers back to back,
 * in A/B order on even rounds and B/A on odd ones, so load swings hit both alike.
 * "won" counts the rounds in which ours was faster; "paired" is the median of each
 * round's own ratio (ours / peer in that round).
 * Medians over the rounds are reported; ratio = ours / peer throughput (> 1: ours is
 * faster; the same as peer time / our time). "% native" is ours against the same work
 * on the host's filesystem without a VM (host page cache warm: the host's caches are
 * shared with everyone and are not dropped).
 * A second table takes the guest out: a minimal vhost-user front-end
 * (tests/helpers/virtiofs/frontend.c) sends each server the requests a guest would, so
 * the servers' own cost shows.
 * Sizes: default fits in ~10 min on a loaded 2-core TCG host; --quick is smaller; --full
 * is the issue's sizes (1 GiB, 10,000 files, a 20,000-file tree: meant for KVM hosts;
 * under TCG it takes hours). Any size can be overridden.
 * Usage: bun bench/fs.ts [--quick|--full] [--mib N] [--rand N] [--small N] [--tree N]
 *                        [--runs N] [--rows seqwrite,seqread,...] [--peer-defaults] [--no-server-only]
 *                        [--ours-args "ARGS"] [--baseline "BINARY ARGS"] [--calibrate arcbox|debian]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Subprocess } from "bun";
import { median } from "./lib/report.ts";
import { bootGuest, startVirtiofsd, virtiofsGuest } from "../tests/helpers/virtiofs-vm.ts";

const has = (name: string) => process.argv.includes(name);
const preset = has("--full")
  ? { mib: 1024, rand: 20000, small: 10000, tree: 20000, runs: 3 }
  : has("--quick")
    ? { mib: 16, rand: 500, small: 200, tree: 300, runs: 3 }
    : { mib: 64, rand: 2000, small: 400, tree: 500, runs: 4 };
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const MIB = arg("--mib", preset.mib);
const RAND = arg("--rand", preset.rand);
const SMALL = arg("--small", preset.small);
const TREE = arg("--tree", preset.tree);
const RUNS = arg("--runs", preset.runs);
const WARM = { mib: 4, rand: 100, small: 50, tree: 100 };

const ROWS = ["seqwrite", "seqread", "randread", "smallfiles", "tar", "find", "parread", "mixed"] as const;
type RowKey = (typeof ROWS)[number];
const rowsArg = process.argv.indexOf("--rows");
const SELECTED: RowKey[] = rowsArg > 0 ? (process.argv[rowsArg + 1]!.split(",") as RowKey[]) : [...ROWS];
for (const r of SELECTED) if (!ROWS.includes(r)) throw new Error(`unknown row ${r}; rows: ${ROWS.join(",")}`);

const SERVERS = ["arcbox", "debian"] as const;
type Server = (typeof SERVERS)[number];
/** Like for like by default: the peer also serves xattrs (`-o xattr`), as ours always does.
 * With xattrs on, the guest kernel asks GETXATTR security.capability before every write()
 * and chown() (its kill-privileges check); a server without xattrs answers ENOSYS once
 * and is never asked again. --peer-defaults runs the peer with no_xattr, its default. */
const PEER_DEFAULTS = has("--peer-defaults");
/** --calibrate arcbox|debian: both devices run that one server, so any ratio away from
 * 1.0 is bias of the set-up (device order, load swings), not a difference of servers. */
const calIdx = process.argv.indexOf("--calibrate");
const CALIBRATE = calIdx > 0 ? (process.argv[calIdx + 1] as Server) : undefined;
if (CALIBRATE && !SERVERS.includes(CALIBRATE)) throw new Error(`--calibrate takes ${SERVERS.join(" or ")}`);
/** --baseline "BINARY [ARGS]": the peer's device runs another arcbox-virtiofsd instead
 * (an older build, or ours with other options), so ratio = this build / that one. */
const baseIdx = process.argv.indexOf("--baseline");
const BASELINE = baseIdx > 0 ? process.argv[baseIdx + 1]!.split(" ") : undefined;
/** --ours-args "ARGS": extra options for our server (e.g. "--threads 0"). */
const oursIdx = process.argv.indexOf("--ours-args");
const OURS_ARGS = oursIdx > 0 ? process.argv[oursIdx + 1]!.split(" ") : [];
/** How each server is started: both on the same directory, each with its default cache mode (auto). */
const serverArgv = (slot: Server, sock: string, dir: string): string[] | undefined => {
  if (BASELINE && slot === "debian") return [BASELINE[0]!, "--socket", sock, "--shared-dir", dir, ...BASELINE.slice(1)];
  const s = CALIBRATE ?? slot;
  if (s === "arcbox" && OURS_ARGS.length) return [join(import.meta.dir, "../native/bin/arcbox-virtiofsd"), "--socket", sock, "--shared-dir", dir, ...OURS_ARGS];
  return s === "arcbox"
    ? undefined /* tests/helpers default: arcbox-virtiofsd --socket --shared-dir, cache auto */
    : ["/usr/lib/qemu/virtiofsd", `--socket-path=${sock}`, "-o", `source=${dir}`, "-o", "cache=auto", "-o", "log_level=err", ...(PEER_DEFAULTS ? [] : ["-o", "xattr"])];
};

const root = mkdtempSync("/tmp/arcbox-bench-fs-");
const shared = join(root, "shared");
const procs: Subprocess[] = [];
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** A tree like a source checkout: n small files over nested directories, as a tarball. */
function makeTree(tarball: string, n: number): void {
  const src = join(root, "tree-src");
  for (let i = 0; i < n; i++) {
    const d = join(src, "pkg", `m${i % 40}`, `sub${i % 7}`);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, `file${i}.ts`), `export const v${i} = ${i};\n`.repeat(1 + (i % 20)));
  }
  const r = Bun.spawnSync(["tar", "-cf", tarball, "-C", src, "pkg"]);
  if (r.exitCode !== 0) throw new Error("tar -c failed");
  rmSync(src, { recursive: true, force: true });
}

/** One row on one server, in the guest; prints "T <server> <row> <ns>" or "V <server> <row> <ops/s>". */
const guestScript = (rounds: number[]) => `
for s in ${SERVERS.join(" ")}; do mkdir -p /mnt/$s; mount -t virtiofs $s /mnt/$s || { echo MOUNT-FAILED; exit 1; }; done
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
timed() { m=$1 s=$2; shift 2; drop; t0=$(probe now); "$@" >/dev/null 2>&1 || echo "ERR $s $m"; t1=$(probe now); echo "T $s $m $((t1 - t0))"; }
parread() { for k in 1 2 3 4; do probe randread $1 $2 >/dev/null & done; wait; }
mixed() { # 3 small-file writers beside 1 fsync writer: n files each, n/5 fsyncs
  for k in 1 2 3; do mkdir -p $1/mix$k; probe smallfiles $1/mix$k $2 >/dev/null & done
  i=0; while [ $i -lt $(($2 / 5)) ]; do probe fsync $1/fs$i x >/dev/null || return 1; i=$((i + 1)); done; wait
}
row() { # row SERVER ROUND ROW MIB RAND SMALL TARBALL
  s=$1 D=/mnt/$1/w-$1-$2; mkdir -p $D/x $D/small
  case $3 in
  seqwrite) timed seqwrite $s dd if=/dev/zero of=$D/seq bs=1M count=$4 conv=fsync ;;
  seqread) timed seqread $s dd if=$D/seq of=/dev/null bs=1M ;;
  randread) drop; echo "V $s randread $(probe randread $D/seq $5)" ;;
  smallfiles) drop; echo "V $s smallfiles $(probe smallfiles $D/small $6)" ;;
  tar) timed tar $s tar -xf /mnt/$s/$7 -C $D/x ;;
  find) timed find $s find $D/x ;;
  parread) [ -f $D/seq ] || dd if=/dev/zero of=$D/seq bs=1M count=$4 2>/dev/null; timed parread $s parread $D/seq $(($5 / 4)) ;;
  mixed) timed mixed $s mixed $D $(($6 / 4)) ;;
  esac
}
round() { # round N MIB RAND SMALL TARBALL
  echo "ROUND $1"
  for r in ${SELECTED.join(" ")}; do
    if [ $(($1 % 2)) = 0 ]; then order="${SERVERS.join(" ")}"; else order="${[...SERVERS].reverse().join(" ")}"; fi
    for s in $order; do row $s $1 $r $2 $3 $4 $5; done
  done
  for s in ${SERVERS.join(" ")}; do rm -f /mnt/$s/w-$s-$1/seq; done
}
echo "LOAD-START $(cat /proc/loadavg)"
round 0 ${WARM.mib} ${WARM.rand} ${WARM.small} tree-warm.tar
${rounds.map((r) => `round ${r} ${MIB} ${RAND} ${SMALL} tree.tar`).join("\n")}
echo BENCH-DONE
`;

type Result = Record<RowKey, number[]>;

/** CPU seconds (user + system) a process and its children (the peer's sandbox forks) used. */
function cpuSeconds(pid: number): number {
  const hz = 100; /* USER_HZ */
  let total = 0;
  const kids = Bun.spawnSync(["pgrep", "-P", String(pid)])
    .stdout.toString()
    .trim()
    .split("\n")
    .filter(Boolean)
    .map(Number);
  for (const p of [pid, ...kids]) {
    try {
      const f = readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1]!.split(" ");
      total += (Number(f[11]) + Number(f[12])) / hz; /* utime, stime (fields 14, 15) */
    } catch {
      /* gone */
    }
  }
  return total;
}
const empty = (): Result => ({ seqwrite: [], seqread: [], randread: [], smallfiles: [], tar: [], find: [], parread: [], mixed: [] });
/** Work units per row, so every sample becomes a rate (higher is better). */
const MIXED_N = Math.floor(SMALL / 4);
const units = (k: RowKey) => (k === "seqwrite" || k === "seqread" ? MIB : k === "parread" ? 4 * Math.floor(RAND / 4) : k === "mixed" ? 3 * MIXED_N + Math.floor(MIXED_N / 5) : TREE);

/** Rounds in which a server's row failed in the guest (e.g. tar -x hit EMFILE). */
type Failures = Record<Server, Partial<Record<RowKey, number>>>;

/** Round 0 is the warm-up: skipped. A timed command that failed ("ERR <server> <row>")
 * gives no sample but a failure, and so does `find` after that server's `tar -x` failed
 * in the same round (the tree it walks is incomplete). */
function parse(lines: string[], into: Record<Server, Result>, failed: Failures): void {
  let round = -1;
  const errs = new Set<string>();
  for (const l of lines) {
    const r0 = /^ROUND (\d+)$/.exec(l);
    if (r0) {
      round = Number(r0[1]);
      errs.clear();
    }
    if (l.startsWith("probe:")) throw new Error(`guest: ${l}`);
    const e = /^ERR (\w+) (\w+)$/.exec(l);
    if (e) errs.add(`${e[1]} ${e[2]}`);
    if (round < 1) continue;
    const t = /^T (\w+) (\w+) (\d+)$/.exec(l);
    const v = /^V (\w+) (\w+) ([\d.]+)$/.exec(l);
    const m = t ?? v;
    if (!m) continue;
    const s = m[1] as Server,
      k = m[2] as RowKey;
    if (errs.has(`${s} ${k}`) || (k === "find" && errs.has(`${s} tar`))) {
      failed[s][k] = (failed[s][k] ?? 0) + 1;
      continue;
    }
    into[s][k].push(v ? Number(m[3]) : units(k) / (Number(m[3]) / 1e9));
  }
}

/** The same work on the host's filesystem, no VM (page cache warm: the host's is shared). */
function native(probe: string): Result {
  const out = empty();
  const sh = (cmd: string[]) => {
    const t0 = performance.now();
    const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
    if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
    return { secs: (performance.now() - t0) / 1000, out: r.stdout.toString().trim() };
  };
  for (let i = 0; i < RUNS; i++) {
    const D = join(shared, `native-${i}`);
    mkdirSync(join(D, "x"), { recursive: true });
    mkdirSync(join(D, "small"));
    for (const k of SELECTED) {
      if (k === "seqwrite") out.seqwrite.push(MIB / sh(["dd", "if=/dev/zero", `of=${D}/seq`, "bs=1M", `count=${MIB}`, "conv=fsync"]).secs);
      if (k === "seqread") out.seqread.push(MIB / sh(["dd", `if=${D}/seq`, "of=/dev/null", "bs=1M"]).secs);
      if (k === "randread") out.randread.push(Number(sh([probe, "randread", `${D}/seq`, String(RAND)]).out));
      if (k === "smallfiles") out.smallfiles.push(Number(sh([probe, "smallfiles", `${D}/small`, String(SMALL)]).out));
      if (k === "tar") out.tar.push(TREE / sh(["tar", "-xf", join(shared, "tree.tar"), "-C", `${D}/x`]).secs);
      if (k === "find") out.find.push(TREE / sh(["find", `${D}/x`]).secs);
      if (k === "parread" || k === "mixed") {
        const fn =
          k === "parread"
            ? `parread() { for k in 1 2 3 4; do ${probe} randread $1 $2 >/dev/null & done; wait; }; [ -f ${D}/seq ] || dd if=/dev/zero of=${D}/seq bs=1M count=${MIB} 2>/dev/null; parread ${D}/seq ${Math.floor(RAND / 4)}`
            : `for k in 1 2 3; do mkdir -p ${D}/mix$k; ${probe} smallfiles ${D}/mix$k ${MIXED_N} >/dev/null & done; i=0; while [ $i -lt ${Math.floor(MIXED_N / 5)} ]; do ${probe} fsync ${D}/fs$i x >/dev/null || exit 1; i=$((i + 1)); done; wait`;
        out[k].push(units(k) / sh(["sh", "-c", fn]).secs);
      }
    }
    rmSync(D, { recursive: true, force: true });
  }
  return out;
}

/** Server-only rows: each round starts fresh servers (Debian's serves one connection). */
async function serverOnly(frontend: string): Promise<Record<Server, Record<string, number[]>>> {
  const out: Record<Server, Record<string, number[]>> = { arcbox: {}, debian: {} };
  const dir = join(root, "server-only");
  mkdirSync(dir);
  writeFileSync(join(dir, "big"), new Uint8Array(64 << 20));
  for (let i = 0; i < RUNS + 1; i++) {
    for (const s of i % 2 ? [...SERVERS].reverse() : SERVERS) {
      const sock = join(root, `so-${s}-${i}.sock`);
      const p = await startVirtiofsd({ socket: sock, dir, binary: serverArgv(s, sock, dir) });
      const r = Bun.spawnSync([frontend, sock, "init", "bench-getattr:20000", "bench-files:500", "lookup:1:big", "bench-read:$3:64"], { stdout: "pipe", stderr: "pipe", timeout: 300_000 });
      p.kill();
      await p.exited;
      for (const m of r.stdout.toString().matchAll(/^(bench-\w+) ok rate=([\d.]+)$/gm)) (out[s][m[1]!] ??= []).push(Number(m[2]));
      if (r.exitCode !== 0) throw new Error(`frontend against ${s}: ${r.stderr}`);
    }
  }
  return out;
}

/** ours / peer as "1.23x"; "peer fails" when only the peer has no sample. */
const ratioCell = (a: number, d: number) => (Number.isNaN(d) && !Number.isNaN(a) ? "peer fails" : `${(a / d).toFixed(2)}x`);

const LABELS: Record<RowKey, [string, string]> = {
  seqwrite: [`sequential write ${MIB} MiB`, "MiB/s"],
  seqread: [`sequential read ${MIB} MiB`, "MiB/s"],
  randread: [`random 4 KiB reads (${RAND})`, "ops/s"],
  smallfiles: [`create+stat+unlink ${SMALL} files`, "ops/s"],
  tar: [`tar -x ${TREE} files`, "files/s"],
  find: [`find over ${TREE} files`, "files/s"],
  parread: [`4 parallel readers (${4 * Math.floor(RAND / 4)} x 4 KiB)`, "ops/s"],
  mixed: [`build-like mix (3 writers + fsyncs)`, "ops/s"],
};

try {
  const g = await virtiofsGuest();
  mkdirSync(shared);
  makeTree(join(shared, "tree.tar"), TREE);
  makeTree(join(shared, "tree-warm.tar"), WARM.tree);
  const results: Record<Server, Result> = { arcbox: empty(), debian: empty() };
  const failed: Failures = { arcbox: {}, debian: {} };
  const cpu: Record<Server, number> = { arcbox: 0, debian: 0 };
  const load0 = loadavg(),
    t0 = Date.now();
  /* Two boots with the devices in opposite order (half the rounds each): the first
   * virtio-fs device came out ahead of the second with the SAME server on both
   * (--calibrate), so neither server may always sit in one place. */
  const all = Array.from({ length: RUNS }, (_, i) => i + 1);
  for (const [boot, rounds] of [all.slice(0, Math.ceil(RUNS / 2)), all.slice(Math.ceil(RUNS / 2))].entries()) {
    if (!rounds.length) continue;
    const order = boot === 0 ? [...SERVERS] : [...SERVERS].reverse();
    const live: Subprocess[] = [];
    for (const s of order) {
      const socket = join(root, `${s}-${boot}.sock`);
      live.push(await startVirtiofsd({ socket, dir: shared, binary: serverArgv(s, socket, shared) }));
    }
    procs.push(...live);
    /* CPU is read when the guest is done but still connected: Debian's server exits with its connection. */
    const onLine = (l: string) => {
      if (l !== "BENCH-DONE") return;
      for (const [i, s] of order.entries()) cpu[s] += cpuSeconds(live[i]!.pid);
    };
    const run = await bootGuest({ shares: order.map((s) => ({ tag: s, socket: join(root, `${s}-${boot}.sock`) })), script: guestScript(rounds), memMiB: 512, timeoutMs: 3_600_000, onLine });
    for (const p of live) p.kill();
    if (!run.output.includes("BENCH-DONE")) throw new Error(`the guest did not finish:\n${run.output}`);
    parse(run.lines, results, failed);
  }
  const vmSecs = (Date.now() - t0) / 1000,
    load1 = loadavg();
  const host = native(g.probe);

  console.log(
    `\nVirtioFS, one TCG guest (-smp 1, 512 MiB), both servers on the same directory, cache=auto both, xattrs ${PEER_DEFAULTS ? "ours on, peer off (its default)" : "on both"}; ${RUNS} rounds over two boots with the devices in opposite order (A/B, B/A within each), medians.`,
  );
  console.log(`Server CPU time over the VM phase (user+system, warm-up included): arcbox ${cpu.arcbox.toFixed(1)} s, virtiofsd ${cpu.debian.toFixed(1)} s.`);
  console.log(`VM phase ${vmSecs.toFixed(0)} s; load average ${load0} at start, ${load1} at end (2 cores). Higher is better; ratio = arcbox/virtiofsd.`);
  console.log(
    `${"row".padEnd(34)}${"arcbox".padStart(15)}${"virtiofsd".padStart(15)}${"ratio".padStart(11)}${"host native".padStart(17)}${"% native".padStart(10)}${"paired".padStart(8)}  won    samples arcbox | virtiofsd`,
  );
  for (const k of SELECTED) {
    const [label, unit] = LABELS[k];
    const a = median(results.arcbox[k]),
      d = median(results.debian[k]),
      n = median(host[k]);
    const f = (x: number) => (Number.isNaN(x) ? "fails" : `${x.toFixed(x < 10 ? 2 : 0)} ${unit}`);
    const samples = (xs: number[], s: Server) => [...xs.map((x) => x.toFixed(x < 10 ? 1 : 0)), ...(failed[s][k] ? [`failed ${failed[s][k]}x`] : [])].join(" ");
    // The median of each round's own ratio: both servers ran that round back to back, so
    // a round's state (load, the guest's page allocator) cancels out of it, where the
    // ratio of the two medians may compare a fast round of one with a slow one of the other.
    const paired = median(results.arcbox[k].map((x, i) => x / (results.debian[k][i] ?? Number.NaN)).filter((r) => Number.isFinite(r)));
    // A round the peer failed and ours did not counts as won.
    const rounds = results.arcbox[k].length + (failed.arcbox[k] ?? 0);
    const won = `${results.arcbox[k].filter((x, i) => x > (results.debian[k][i] ?? (failed.debian[k] ? 0 : Infinity))).length}/${rounds}`;
    console.log(
      `${label.padEnd(34)}${f(a).padStart(15)}${f(d).padStart(15)}${ratioCell(a, d).padStart(11)}${f(n).padStart(17)}${((100 * a) / n).toFixed(1).padStart(9)}%${(Number.isNaN(paired) ? "-" : `${paired.toFixed(2)}x`).padStart(8)}  ${won.padEnd(6)} ${samples(results.arcbox[k], "arcbox")} | ${samples(results.debian[k], "debian")}`,
    );
  }
  if (!has("--no-server-only")) {
    const so = await serverOnly(join(dirname(g.probe), "frontend"));
    console.log(`\nServers alone (no guest: a C vhost-user front-end sends the requests; ${RUNS + 1} rounds, medians). Higher is better.`);
    console.log(`${"metric".padEnd(34)}${"arcbox".padStart(15)}${"virtiofsd".padStart(15)}${"ratio".padStart(8)}`);
    for (const [k, label, unit] of [
      ["bench-getattr", "GETATTR round trips", "ops/s"],
      ["bench-files", "small file life (8 requests)", "files/s"],
      ["bench-read", "1 MiB READs (page cache)", "MiB/s"],
    ] as const) {
      const a = median(so.arcbox[k] ?? [NaN]),
        d = median(so.debian[k] ?? [NaN]);
      console.log(`${label.padEnd(34)}${`${a.toFixed(0)} ${unit}`.padStart(15)}${`${d.toFixed(0)} ${unit}`.padStart(15)}${(a / d).toFixed(2).padStart(7)}x`);
    }
  }
} finally {
  for (const p of procs) p.kill();
  rmSync(root, { recursive: true, force: true });
}
