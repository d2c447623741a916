/**
 * Where the container datapath's kernel operations run. netd decides (addresses, links,
 * rules); a ToolRunner carries out the resulting `ip`, `iptables-restore` and sysctl
 * steps on this host (host mode) or in the engine machine through its guest agent
 * (VM mode, engine-runner.ts). Namespace syscalls never run in Bun itself.
 */
import { NetworkError } from "../core/network-error.ts";
import { exec, type ExecResult } from "./exec.ts";
import { writeSysctl } from "./links.ts";

export interface NetCommand {
  argv: string[];
  stdin?: string;
  /** A non-zero exit is expected at times (creating what may exist, deleting what may be gone). */
  mayFail?: boolean;
}

export interface ToolRunner {
  /** "host": this host's kernel; "engine": the engine machine's (VM mode). */
  readonly where: "host" | "engine";
  /**
   * Runs the commands in order. A failure not allowed by `mayFail` ends the run with an
   * internal NetworkError carrying the tool's stderr.
   */
  run(cmds: NetCommand[]): Promise<ExecResult[]>;
  /** Writes /proc/sys/<key> (key with slashes, e.g. "net/ipv4/ip_forward"). */
  sysctl(key: string, value: string): Promise<void>;
}

/** The error for a command that failed (the tool's own words). */
export function commandFailed(argv: string[], r: ExecResult): NetworkError {
  return new NetworkError("internal", `${argv[0]} ${argv.slice(1, 4).join(" ")} failed: ${r.stderr.trim() || r.stdout.trim()}`);
}

export const hostRunner: ToolRunner = {
  where: "host",
  async run(cmds) {
    const out: ExecResult[] = [];
    for (const c of cmds) {
      const r = await exec(c.argv, c.stdin);
      out.push(r);
      if (r.code !== 0 && !c.mayFail) throw commandFailed(c.argv, r);
    }
    return out;
  },
  async sysctl(key, value) {
    writeSysctl(key, value);
  },
};
