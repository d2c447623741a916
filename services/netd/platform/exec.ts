/** Runs the host tools netd drives (ip, iptables, nsenter): namespace syscalls never run in Bun itself. */
import { NetworkError } from "../core/network-error.ts";

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function exec(argv: string[], stdin?: string): Promise<ExecResult> {
  const proc = Bun.spawn(argv, {
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Like exec, but a non-zero exit is an internal error carrying the tool's stderr. */
export async function execOk(argv: string[], stdin?: string): Promise<string> {
  const r = await exec(argv, stdin);
  if (r.code !== 0) throw new NetworkError("internal", `${argv[0]} ${argv.slice(1, 4).join(" ")} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}
