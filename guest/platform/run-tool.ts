/** Spawns host tools (runc, mount, umount, ps) and turns failures into GuestErrors. */
import { GuestError } from "../core/guest-error.ts";

export interface ToolResult {
  code: number;
  stdout: string;
  stderr: string;
}

const SEARCH_PATH = `${process.env.PATH ?? ""}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;

/** Absolute path of a tool, looked up once (the agent may run with a minimal PATH). */
export function toolPath(name: string): string {
  const found = Bun.which(name, { PATH: SEARCH_PATH });
  if (!found) throw new GuestError("unavailable", `${name} is not installed (see scripts/packages.txt)`);
  return found;
}

export async function runTool(argv: string[], opts: { stdin?: Uint8Array; env?: Record<string, string> } = {}): Promise<ToolResult> {
  const proc = Bun.spawn(argv, { stdin: opts.stdin ?? "ignore", stdout: "pipe", stderr: "pipe", ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Runs a tool and throws (with its stderr) when it fails. */
export async function mustRun(argv: string[], what: string): Promise<string> {
  const r = await runTool(argv);
  if (r.code !== 0) throw new GuestError("internal", `${what}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`);
  return r.stdout;
}
