/**
 * Starts a real ArcBox daemon (`arcbox start`) on a throwaway home for a test file,
 * and runs the real docker CLI against its socket.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { arcboxHome, ensureHome, serviceDataDir } from "../../lib/home.ts";
import { netNames } from "../../services/netd/core/names.ts";
import { removeChains } from "../../services/netd/platform/iptables.ts";
import { buildBusyboxRootfs } from "./test-images.ts";

export const REPO = join(import.meta.dir, "..", "..");

/**
 * vmm's accelerator probe result (data/vmm/accel.json), carried from one test home to the
 * next: the probe boots a VM and, where KVM hangs rather than fails, waits out its 15 s
 * timeout, once per fresh home otherwise. The cache is keyed by qemu, host kernel and
 * guest kernel, so vmm still probes again if any of them differs.
 */
const ACCEL_CACHE = join(tmpdir(), "arcbox-test-accel.json");
const accelFile = (home: string) => join(arcboxHome(home).data, "vmm", "accel.json");
export const ARCBOX = join(REPO, "bin", "arcbox");

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(argv: string[], opts: { env?: Record<string, string>; stdin?: string; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  const proc = Bun.spawn(argv, {
    cwd: opts.cwd,
    stdin: opts.stdin !== undefined ? new TextEncoder().encode(opts.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, ...opts.env },
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * Where a test daemon runs containers: "host", or "vm" (every container in the engine
 * machine, issue 13). Default from ARCBOX_TEST_ENGINE, so a suite runs in either mode
 * with one flag: `ARCBOX_TEST_ENGINE=vm bun test tests/e2e/containers.test.ts`.
 */
export type TestEngine = "host" | "vm";
export const TEST_ENGINE: TestEngine = process.env.ARCBOX_TEST_ENGINE === "vm" ? "vm" : "host";

export class TestDaemon {
  readonly home: string;
  readonly engine: TestEngine;
  /**
   * `env` reaches the daemon and its services (e.g. ARCBOX_IDLE_EXIT_SECONDS); `home`,
   * when given, is used instead of a fresh temp dir (e.g. one on a small filesystem).
   * `opts.engine` overrides ARCBOX_TEST_ENGINE; "vm" writes `"vm": true` into the home's
   * daemon.json before the first start (the daemon's own switch).
   */
  constructor(
    prefix = "arcbox-test-",
    private readonly env: Record<string, string> = {},
    home?: string,
    opts: { engine?: TestEngine } = {},
  ) {
    this.home = home ?? mkdtempSync(join(tmpdir(), prefix));
    this.engine = opts.engine ?? TEST_ENGINE;
  }

  get socket(): string {
    return join(this.home, "run", "docker.sock");
  }

  get dockerHost(): string {
    return `unix://${this.socket}`;
  }

  arcbox(args: string[], opts?: Parameters<typeof run>[1]): Promise<RunResult> {
    return run([ARCBOX, "--home", this.home, ...args], { ...opts, env: { ...this.env, ...opts?.env }, timeoutMs: this.timeout(opts?.timeoutMs) });
  }

  /** The real docker CLI (first on PATH, 28.x) pointed at this daemon. */
  docker(args: string[], opts?: Parameters<typeof run>[1]): Promise<RunResult> {
    return run(["docker", "-H", this.dockerHost, ...args], { ...opts, timeoutMs: this.timeout(opts?.timeoutMs) });
  }

  /**
   * A command's time limit: as asked in host mode; in VM mode at least five minutes
   * (under TCG a container start takes seconds, the first waits for the machine's boot;
   * the suites' limits are host-mode sized and only bound a hang).
   */
  private timeout(ms: number | undefined): number | undefined {
    return this.engine === "vm" ? Math.max(ms ?? 0, 300_000) : ms;
  }

  /** fetch() against the Docker socket, for raw API checks. */
  api(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`http://docker${path}`, { ...init, unix: this.socket } as RequestInit);
  }

  /** Each service's state in `arcbox status` ("ready", "idle", ...). */
  async serviceStates(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const line of (await this.arcbox(["status"])).stdout.split("\n")) {
      const m = /^(\w+)\s+(\w+)\s/.exec(line);
      if (m && m[1] !== "SERVICE") out[m[1]!] = m[2]!;
    }
    return out;
  }

  /**
   * `docker import`s the busybox test rootfs as `image`; `customize` may change the
   * rootfs first (its path is given).
   */
  async importBusybox(image: string, customize?: (root: string) => void): Promise<void> {
    const root = mkdtempSync(join(tmpdir(), "arcbox-busybox-rootfs-"));
    try {
      buildBusyboxRootfs(root);
      customize?.(root);
      const tar = Bun.spawnSync(["tar", "--numeric-owner", "-C", root, "-cf", "-", "."]).stdout;
      const imp = Bun.spawn(["docker", "-H", this.dockerHost, "import", "-", image], { stdin: tar, stdout: "pipe", stderr: "pipe" });
      if ((await imp.exited) !== 0) throw new Error(`docker import: ${await new Response(imp.stderr).text()}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }

  async start(): Promise<void> {
    if (existsSync(ACCEL_CACHE) && !existsSync(accelFile(this.home))) {
      const home = arcboxHome(this.home);
      ensureHome(home); // the directories and modes the daemon itself makes
      serviceDataDir(home, "vmm");
      copyFileSync(ACCEL_CACHE, accelFile(this.home));
    }
    if (this.engine === "vm") {
      const path = join(this.home, "daemon.json");
      const current = existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>) : {};
      if (current.vm !== true) writeFileSync(path, JSON.stringify({ ...current, vm: true }));
    }
    const r = await this.arcbox(["start"]);
    if (r.code !== 0) throw new Error(`arcbox start failed (${r.code}): ${r.stderr}${r.stdout}`);
  }

  async stop(): Promise<void> {
    await this.arcbox(["stop"]);
  }

  /**
   * Leaves nothing behind: removes every container (containers outlive `arcbox stop`
   * by design), stops the daemon, ends any process still tied to this home (guest
   * agent, shims), unmounts what is still mounted under it, and deletes it. Never throws.
   */
  async dispose(): Promise<void> {
    try {
      if ((await this.api("/_ping").catch(() => undefined))?.ok) {
        const ids = (await this.docker(["ps", "-aq"])).stdout.split("\n").filter(Boolean);
        if (ids.length) await this.docker(["rm", "-f", "-v", ...ids], { timeoutMs: 60_000 });
      }
      await this.stop();
    } catch {}
    await run(["pkill", "-KILL", "-f", this.home]).catch(() => {});
    if (existsSync(accelFile(this.home))) copyFileSync(accelFile(this.home), ACCEL_CACHE);
    const mounts = readFileSync("/proc/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
      .filter((m): m is string => !!m && m.startsWith(`${this.home}/`))
      .reverse();
    for (const m of mounts) await run(["umount", "-l", m]).catch(() => {});
    await removeNetworkLeftovers(this.home).catch(() => {});
    rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * The kernel objects netd made for this home only (its tag: links, namespaces, iptables
 * chains) that outlive the daemon by design: a running machine keeps its bridge, TAP
 * and rules (in VM mode the engine machine always runs), and its VM was just killed.
 */
async function removeNetworkLeftovers(home: string): Promise<void> {
  const n = netNames(home);
  const links = JSON.parse((await run(["ip", "-j", "link", "show"])).stdout || "[]") as { ifname: string }[];
  for (const l of links) if (l.ifname.startsWith(n.ifPrefix)) await run(["ip", "link", "del", l.ifname]);
  const netns = JSON.parse((await run(["ip", "-j", "netns", "list"])).stdout || "[]") as { name: string }[];
  for (const ns of netns) if (ns.name.startsWith(n.netnsPrefix)) await run(["ip", "netns", "del", ns.name]);
  await removeChains(n);
}
