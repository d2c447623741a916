/**
 * Machine shares: one host directory served to one machine over VirtioFS by its own
 * arcbox-virtiofsd process. fsd owns their configuration and lifecycle: it starts a
 * server per share, restarts one that dies (with backoff, giving up after repeated
 * crashes), stops them when vmm says the machine is done, and re-adopts the servers still
 * running after fsd itself restarts. Metrics come from each server's stats file.
 *
 * State machine of a share:
 *   starting -> running | failed;  running -> restarting (server died) | stopped;
 *   restarting -> running | failed | stopped;  failed -> starting (StartShare again) | stopped
 */
import { existsSync, mkdirSync, realpathSync, rmSync, statSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import type { Subprocess } from "bun";
import { z } from "zod";
import type { ArcboxHome } from "../../../lib/home.ts";
import type { Logger } from "../../../lib/log.ts";
import { type CacheMode, isServer, readStats, type ServerStats, spawnServer, waitListening, watchExit } from "../platform/virtiofsd.ts";
import type { ShareRecord, ShareStore } from "../storage/share-store.ts";
import { VolumeError } from "./volume-error.ts";

export type ShareState = "starting" | "running" | "restarting" | "failed" | "stopped";
const NEXT: Record<ShareState, ShareState[]> = {
  starting: ["running", "failed", "stopped"],
  running: ["restarting", "stopped"],
  restarting: ["running", "failed", "stopped"],
  failed: ["starting", "stopped"],
  stopped: [],
};

export const StartShareInput = z.object({
  machine: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, "machine name must match [A-Za-z0-9][A-Za-z0-9_.-]{0,62}"),
  tag: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,35}$/, "tag must match [A-Za-z0-9][A-Za-z0-9_.-]{0,35} (virtio-fs tags are at most 36 bytes)"),
  hostDir: z.string().refine(isAbsolute, "host_dir must be an absolute path"),
  readOnly: z.boolean().default(false),
  cacheMode: z.preprocess((v) => (v === "" || v === undefined ? "auto" : v), z.enum(["auto", "always", "never"], { message: "cache_mode must be auto, always or never" })),
});
export type StartShareInput = z.input<typeof StartShareInput>;

export interface ShareView {
  machine: string;
  tag: string;
  hostDir: string;
  readOnly: boolean;
  cacheMode: CacheMode;
  socketPath: string;
  state: ShareState;
  pid: number;
  restarts: number;
  stats?: ServerStats;
}

interface Share {
  rec: ShareRecord;
  state: ShareState;
  proc?: Subprocess; // absent for a server adopted from an earlier fsd
  exited?: Promise<void>; // the current server's exit (child exit, or its watch socket closing)
  gen: number; // which server incarnation exit events belong to
  restarts: number;
  exits: number[]; // recent unexpected exits (ms), for the give-up rule
  timer?: ReturnType<typeof setTimeout>;
}

const MAX_EXITS = 5;
const EXIT_WINDOW_MS = 60_000;

export class Shares {
  private readonly shares = new Map<string, Share>();
  private readonly runDir: string;
  private readonly logDir: string;

  constructor(
    home: ArcboxHome,
    private readonly store: ShareStore,
    private readonly log: Logger,
  ) {
    this.runDir = join(home.run, "vfs");
    this.logDir = join(home.log, "vfs");
    mkdirSync(this.runDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.logDir, { recursive: true });
  }

  get size(): number {
    return this.shares.size;
  }

  /** Re-adopts servers that outlived the previous fsd; restarts the ones that did not. */
  async adopt(): Promise<void> {
    for (const rec of this.store.load()) {
      const sh: Share = { rec, state: "starting", restarts: 0, exits: [], gen: 0 };
      this.shares.set(key(rec.machine, rec.tag), sh);
      const watched = isServer(rec.pid, rec.socketPath) && existsSync(rec.socketPath) ? await watchExit(rec.watchPath) : undefined;
      if (watched) {
        const { exited } = watched;
        const gen = ++sh.gen;
        sh.exited = exited;
        void exited.then(() => this.onExit(sh, gen));
        this.move(sh, "running");
        this.log.info("re-adopted share server", { machine: rec.machine, tag: rec.tag, pid: rec.pid });
      } else {
        await this.launch(sh).catch((err) => this.log.warn("share server did not come back", { machine: rec.machine, tag: rec.tag, err: String(err) }));
      }
    }
    this.persist();
  }

  async start(input: StartShareInput): Promise<ShareView> {
    const parsed = StartShareInput.safeParse(input);
    if (!parsed.success) throw new VolumeError("invalid_argument", parsed.error.issues.map((i) => i.message).join("; "));
    const o = parsed.data;
    let hostDir: string;
    try {
      hostDir = realpathSync(o.hostDir);
      if (!statSync(hostDir).isDirectory()) throw new VolumeError("invalid_argument", `${o.hostDir} is not a directory`);
    } catch (err) {
      if (err instanceof VolumeError) throw err;
      throw new VolumeError("invalid_argument", `host_dir ${o.hostDir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const k = key(o.machine, o.tag);
    const existing = this.shares.get(k);
    if (existing) {
      const same = existing.rec.hostDir === hostDir && existing.rec.readOnly === o.readOnly && existing.rec.cacheMode === o.cacheMode;
      if (same && existing.state !== "failed" && this.alive(existing)) return this.view(existing);
      await this.stopOne(existing); // changed configuration or dead server: a fresh one
    }
    const base = `${o.machine}.${o.tag}`;
    const rec: ShareRecord = {
      machine: o.machine,
      tag: o.tag,
      hostDir,
      readOnly: o.readOnly,
      cacheMode: o.cacheMode,
      socketPath: join(this.runDir, `${base}.sock`),
      statsPath: join(this.runDir, `${base}.stats`),
      watchPath: join(this.runDir, `${base}.watch`),
      logPath: join(this.logDir, `${base}.log`),
      pid: 0,
    };
    if (Buffer.byteLength(rec.socketPath) > 100) throw new VolumeError("invalid_argument", `socket path ${rec.socketPath} is too long for a Unix socket (ARCBOX_HOME too deep?)`);
    const sh: Share = { rec, state: "starting", restarts: 0, exits: [], gen: 0 };
    this.shares.set(k, sh);
    try {
      await this.launch(sh);
    } catch (err) {
      this.shares.delete(k);
      this.persist();
      throw err;
    }
    this.persist();
    this.log.info("share started", { machine: rec.machine, tag: rec.tag, hostDir, readOnly: rec.readOnly, cache: rec.cacheMode, pid: rec.pid });
    return this.view(sh);
  }

  /** Stops one share, or every share of the machine when tag is empty. Idempotent. */
  async stop(machine: string, tag = ""): Promise<string[]> {
    const victims = [...this.shares.values()].filter((s) => s.rec.machine === machine && (!tag || s.rec.tag === tag));
    await Promise.all(victims.map((s) => this.stopOne(s)));
    this.persist();
    return victims.map((s) => s.rec.tag);
  }

  list(machine = ""): ShareView[] {
    return [...this.shares.values()].filter((s) => !machine || s.rec.machine === machine).map((s) => this.view(s));
  }

  /** fsd stopping: servers keep running for their machines; the next fsd re-adopts them. */
  detach(): void {
    for (const s of this.shares.values()) if (s.timer) clearTimeout(s.timer);
    this.persist();
  }

  private move(sh: Share, to: ShareState): void {
    if (sh.state === to) return;
    if (!NEXT[sh.state].includes(to)) throw new VolumeError("internal", `share ${sh.rec.machine}/${sh.rec.tag}: ${sh.state} -> ${to}`);
    sh.state = to;
  }

  private async launch(sh: Share): Promise<void> {
    if (sh.state === "failed") this.move(sh, "starting");
    rmSync(sh.rec.statsPath, { force: true });
    const proc = spawnServer(sh.rec);
    const gen = ++sh.gen;
    sh.proc = proc;
    sh.rec.pid = proc.pid;
    sh.exited = proc.exited.then(() => undefined);
    void sh.exited.then(() => this.onExit(sh, gen));
    try {
      await waitListening(proc, sh.rec.socketPath);
    } catch (err) {
      proc.kill("SIGKILL");
      if (sh.state !== "stopped") this.move(sh, "failed");
      throw err;
    }
    if (sh.state !== "stopped") this.move(sh, "running");
  }

  private onExit(sh: Share, gen: number): void {
    if (sh.gen !== gen || sh.state === "stopped" || sh.state === "failed" || sh.state === "starting") return;
    const now = Date.now();
    sh.exits = [...sh.exits.filter((t) => now - t < EXIT_WINDOW_MS), now];
    this.log.warn("share server exited", { machine: sh.rec.machine, tag: sh.rec.tag, pid: sh.rec.pid, code: sh.proc?.exitCode, signal: sh.proc?.signalCode });
    if (sh.exits.length >= MAX_EXITS) {
      this.move(sh, "restarting");
      this.move(sh, "failed");
      this.log.error("share server keeps dying: giving up", { machine: sh.rec.machine, tag: sh.rec.tag });
      return;
    }
    this.move(sh, "restarting");
    // qemu does not reconnect to a new server; the restart serves the machine's next start.
    sh.timer = setTimeout(
      () => {
        sh.timer = undefined;
        if (sh.state !== "restarting") return;
        sh.restarts++;
        this.launch(sh).then(
          () => this.persist(),
          (err) => this.log.error("share server restart failed", { machine: sh.rec.machine, tag: sh.rec.tag, err: String(err) }),
        );
      },
      100 * 2 ** (sh.exits.length - 1),
    );
  }

  private alive(sh: Share): boolean {
    return sh.proc ? sh.proc.exitCode === null && sh.proc.signalCode === null : isServer(sh.rec.pid, sh.rec.socketPath);
  }

  private async stopOne(sh: Share): Promise<void> {
    if (sh.timer) clearTimeout(sh.timer);
    const wasAlive = this.alive(sh);
    sh.state = "stopped";
    this.shares.delete(key(sh.rec.machine, sh.rec.tag));
    if (wasAlive) {
      try {
        process.kill(sh.rec.pid, "SIGTERM");
      } catch {
        // SAFETY: already gone between the check and the kill; nothing to stop.
      }
      const pid = sh.rec.pid;
      const killer = setTimeout(() => {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // SAFETY: it exited just before the deadline.
        }
      }, 3000);
      await sh.exited;
      clearTimeout(killer);
    }
    for (const f of [sh.rec.socketPath, sh.rec.statsPath, sh.rec.watchPath]) rmSync(f, { force: true });
    this.log.info("share stopped", { machine: sh.rec.machine, tag: sh.rec.tag });
  }

  private persist(): void {
    this.store.save([...this.shares.values()].filter((s) => s.state !== "failed").map((s) => s.rec));
  }

  private view(sh: Share): ShareView {
    const r = sh.rec;
    return {
      machine: r.machine,
      tag: r.tag,
      hostDir: r.hostDir,
      readOnly: r.readOnly,
      cacheMode: r.cacheMode,
      socketPath: r.socketPath,
      state: sh.state,
      pid: r.pid,
      restarts: sh.restarts,
      stats: sh.state === "running" ? readStats(r.statsPath) : undefined,
    };
  }
}

const key = (machine: string, tag: string) => `${machine}/${tag}`;
