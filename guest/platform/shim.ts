/**
 * Starts the per-process shim (native/shim/arcbox-shim.c). The shim runs runc, detaches
 * into its own session and reports "ok <pid>" or "err" on stdout; on "err" runc's JSON
 * log in the state dir holds the reason.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../../lib/entry.ts";
import { GuestError } from "../core/guest-error.ts";
import { inRuncWording, lastRuncLogError, runcError } from "./runc.ts";
import { runTool } from "./run-tool.ts";

const SHIM = join(REPO_ROOT, "native", "bin", "arcbox-shim");
let built: Promise<void> | undefined;

/** Builds the shim on first use when the install step has not (a quick, idempotent cc run). */
function ensureShim(): Promise<void> {
  built ??= (async () => {
    if (existsSync(SHIM)) return;
    const r = await runTool([join(REPO_ROOT, "scripts", "build-native.sh")]);
    if (r.code !== 0 || !existsSync(SHIM)) throw new GuestError("unavailable", `cannot build the shim: ${r.stderr.trim()}`);
  })();
  return built;
}

export interface ShimOptions {
  /** run: a machine exec, a process in the machine itself (needs specFile). */
  mode: "create" | "exec" | "run";
  /** Container id (create) or exec id (exec, run). */
  id: string;
  stateDir: string;
  runc?: string;
  runcRoot?: string;
  bundle?: string;
  containerId?: string;
  processFile?: string;
  /** An exec the shim starts by joining the container itself (exec-spec.ts), not runc. */
  specFile?: string;
  stdioSocket: string;
  consoleSocket: string;
  notifySocket: string;
  logPath?: string;
  oomControl?: string;
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  hold: boolean;
  /** The process's args[0], for crun's errors that do not name it (inRuncWording). */
  executable?: string;
}

/** Runs runc through a new shim; resolves with the process's pid once it exists. */
export async function startShim(o: ShimOptions): Promise<number> {
  await ensureShim();
  const argv = [SHIM, o.mode, o.id, o.stateDir, "--stdio", o.stdioSocket, "--console", o.consoleSocket, "--notify", o.notifySocket];
  if (o.runc) argv.push("--runc", o.runc);
  if (o.runcRoot) argv.push("--root", o.runcRoot);
  if (o.bundle) argv.push("--bundle", o.bundle);
  if (o.containerId) argv.push("--container", o.containerId);
  if (o.processFile) argv.push("--process", o.processFile);
  if (o.specFile) argv.push("--spec", o.specFile);
  if (o.logPath) argv.push("--log", o.logPath);
  if (o.oomControl) argv.push("--oom-control", o.oomControl);
  if (o.tty) argv.push("--tty");
  if (o.stdin) argv.push("--stdin");
  if (o.stdinOnce) argv.push("--stdin-once");
  if (o.hold) argv.push("--hold");
  // The shim's own complaints (bad options) land in shim.log, next to the daemon's.
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: Bun.file(join(o.stateDir, "shim.log")) });
  const out = await firstLine(proc.stdout);
  await proc.exited;
  const m = /^ok (\d+)/.exec(out);
  if (m) return Number(m[1]);
  const reason = lastRuncLogError(join(o.stateDir, "runc.log")) ?? lastLine(join(o.stateDir, "shim.log")) ?? "the shim failed to start runc";
  throw runcError(inRuncWording(reason, o.executable));
}

/**
 * Starts a created container as `runc start` / `crun start` do (the shim's "start" and
 * "start-write" modes, ~1 ms instead of a runtime process: ~10 ms for runc on the host,
 * ~1.8 s for crun under TCG): releases the init blocked on the runtime's exec.fifo
 * (runc's init writes to it, crun's reads from it).
 */
export async function startCreated(execFifo: string, initPid: number, runtime: "runc" | "crun" = "runc"): Promise<void> {
  await ensureShim();
  const proc = Bun.spawn([SHIM, runtime === "runc" ? "start" : "start-write", execFifo, String(initPid)], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw runcError(stderr.trim() || `starting the container failed with exit ${code}`);
}

/** Reads up to the first newline (the shim's verdict), without waiting for EOF. */
async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    void reader.cancel().catch(() => {});
  }
  return text;
}

function lastLine(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim().split("\n").at(-1) || undefined;
  } catch {
    return undefined;
  }
}
