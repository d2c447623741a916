/**
 * Docker Engine as the comparison peer: Debian's `dockerd` (docker.io) started with its
 * own data root, exec root, pidfile and socket, so it never touches a system Docker.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

export interface DockerEngine {
  socket: string;
  host: string;
  pid: number;
  root: string;
  stop(): Promise<void>;
}

export interface DockerdOptions {
  /** Extra dockerd flags, e.g. ["--insecure-registry", "127.0.0.1:5000"]. */
  args?: string[];
  /** Networking off by default, so benchmarks do not depend on docker0 or iptables. */
  networking?: boolean;
}

export async function pingDocker(socket: string): Promise<boolean> {
  try {
    const res = await fetch("http://d/_ping", { unix: socket } as RequestInit);
    return res.ok;
  } catch {
    return false;
  }
}

export async function startDockerd(opts: DockerdOptions = {}): Promise<DockerEngine & { proc: Subprocess }> {
  const root = mkdtempSync(join(tmpdir(), "bench-dockerd-"));
  const socket = join(root, "docker.sock");
  const net = opts.networking ? [] : ["--bridge=none", "--iptables=false", "--ip6tables=false"];
  const proc = Bun.spawn(
    ["dockerd", "--data-root", join(root, "data"), "--exec-root", join(root, "exec"), "--pidfile", join(root, "dockerd.pid"), "-H", `unix://${socket}`, "--containerd-namespace", "bench", "--log-level", "warn", ...net, ...(opts.args ?? [])],
    { stdout: Bun.file(join(root, "dockerd.log")), stderr: Bun.file(join(root, "dockerd.err.log")) },
  );
  const deadline = Date.now() + 60_000;
  while (!(await pingDocker(socket))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`dockerd did not start; see ${root}/dockerd.err.log`);
    await Bun.sleep(10);
  }
  return {
    proc,
    socket,
    host: `unix://${socket}`,
    pid: proc.pid,
    root,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      rmSync(root, { recursive: true, force: true });
    },
  };
}
