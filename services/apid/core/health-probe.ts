/**
 * One run of a container's health check, as dockerd's cmdProbe: an exec through the
 * ordinary exec path (so it shows as exec_create/exec_start/exec_die events, as in
 * Docker), stdout and stderr together, at most 4096 bytes kept, a timeout after which
 * the result is -1 "Health check exceeded timeout (...)".
 */
import { connectUnix } from "../docker/streams/unix-connect.ts";
import { FrameFilter } from "../docker/streams/stream-frames.ts";
import type { ExecBackend } from "./container-backends.ts";

/** dockerd's maxOutputLen. */
const MAX_OUTPUT = 4096;

export interface ProbeResult {
  Start: string;
  End: string;
  ExitCode: number;
  Output: string;
}

/** Go's time.Duration.String() for the whole milliseconds a timeout has (e.g. "1s", "1.5s", "500ms"). */
export function goDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  const rest = s - m * 60;
  if (m < 60) return `${m}m${rest}s`;
  return `${Math.floor(m / 60)}h${m % 60}m${rest}s`;
}

async function collectOutput(execs: ExecBackend, execId: string, socketPath: string): Promise<string> {
  const stdio = connectUnix(socketPath);
  const chunks: Buffer[] = [];
  let size = 0;
  // Only the payloads of stdout and stderr frames, in arrival order.
  const frames = new FrameFilter((s) => s === 1 || s === 2);
  await new Promise<void>((resolve) => {
    stdio.on("data", (chunk: Buffer) => {
      for (const f of frames.push(chunk)) {
        if (size >= MAX_OUTPUT) continue;
        const payload = f.subarray(8, 8 + Math.min(f.length - 8, MAX_OUTPUT - size));
        chunks.push(payload);
        size += payload.length;
      }
    });
    stdio.once("end", resolve);
    stdio.once("close", resolve);
    stdio.once("error", () => resolve());
  });
  stdio.destroy();
  const e = execs.get(execId);
  void execs.settle(e);
  await e.exited;
  return Buffer.concat(chunks).toString("utf8");
}

export async function runProbe(execs: ExecBackend, containerId: string, cmd: string[], timeoutMs: number): Promise<ProbeResult> {
  const start = new Date();
  const done = (ExitCode: number, Output: string): ProbeResult => ({ Start: start.toISOString(), End: new Date().toISOString(), ExitCode, Output });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<ProbeResult>((resolve) => {
    timer = setTimeout(() => resolve(done(-1, `Health check exceeded timeout (${goDuration(timeoutMs)})`)), timeoutMs);
  });
  const probe = (async () => {
    const id = execs.create(containerId, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    let socketPath: string;
    try {
      socketPath = await execs.start(id, { detach: false });
    } catch (err) {
      return done(-1, (err as Error).message);
    }
    const output = await collectOutput(execs, id, socketPath);
    return done(execs.get(id).exitCode ?? -1, output);
  })().catch((err: unknown) => done(-1, (err as Error).message));
  try {
    return await Promise.race([probe, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
