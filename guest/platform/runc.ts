/**
 * runc, driven as a command-line tool with our own --root. Errors come back from
 * runc's JSON log or stderr; "executable file not found" and "permission denied" get
 * their own codes (docker run maps them to exit 127 and 126).
 */
import { readFileSync } from "node:fs";
import type { ErrorCode } from "../../lib/errors.ts";
import { GuestError } from "../core/guest-error.ts";
import { runTool, toolPath } from "./run-tool.ts";

export interface RuncState {
  id: string;
  pid: number;
  status: string;
}

/** Maps a runc error message to an ArcBox error code. */
export function classifyRuncError(message: string): ErrorCode {
  // Only the process's own executable: `exec: "<path>": <reason>` (a missing bind-mount
  // source is a different error, not docker run's 127).
  const execError = /exec: "[^"]*": (.*)$/s.exec(message)?.[1] ?? "";
  if (/executable file not found|no such file or directory/i.test(execError)) return "not_found";
  if (/permission denied|is a directory/i.test(execError)) return "permission_denied";
  if (/error mounting .*no such file or directory/i.test(message)) return "invalid_argument";
  if (/does not exist|not found/i.test(message) && /container/i.test(message)) return "not_found";
  if (/not running|is paused|not paused|already|cannot (kill|pause|resume)|is running|still running/i.test(message)) return "failed_precondition";
  return "internal";
}

/** The last error runc wrote to its JSON log file (`--log-format json`). */
export function lastRuncLogError(logPath: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logPath, "utf8");
  } catch {
    return undefined;
  }
  let msg: string | undefined;
  for (const line of text.split("\n")) {
    if (!line) continue;
    try {
      const rec = JSON.parse(line) as { level?: string; msg?: string };
      if (rec.level === "error" || rec.level === "fatal") msg = rec.msg;
    } catch {}
  }
  return msg;
}

export function runcError(message: string): GuestError {
  return new GuestError(classifyRuncError(message), message);
}

export class Runc {
  readonly binary = toolPath("runc");
  constructor(readonly root: string) {}

  private async run(args: string[], stdin?: Uint8Array): Promise<string> {
    const r = await runTool([this.binary, "--root", this.root, ...args], { stdin });
    if (r.code !== 0) throw runcError((r.stderr || r.stdout).trim().replace(/^time="[^"]*" level=\w+ msg="(.*)"$/s, "$1") || `runc ${args[0]} failed with exit ${r.code}`);
    return r.stdout;
  }

  start(id: string) {
    return this.run(["start", id]);
  }
  kill(id: string, signal: string, all: boolean) {
    return this.run(["kill", ...(all ? ["--all"] : []), id, signal]);
  }
  delete(id: string, force: boolean) {
    return this.run(["delete", ...(force ? ["--force"] : []), id]);
  }
  pause(id: string) {
    return this.run(["pause", id]);
  }
  resume(id: string) {
    return this.run(["resume", id]);
  }
  update(id: string, resources: unknown) {
    return this.run(["update", "--resources", "-", id], new TextEncoder().encode(JSON.stringify(resources)));
  }
  async ps(id: string): Promise<number[]> {
    return JSON.parse((await this.run(["ps", "--format", "json", id])) || "[]") as number[];
  }
  async state(id: string): Promise<RuncState | undefined> {
    const r = await runTool([this.binary, "--root", this.root, "state", id]);
    if (r.code !== 0) return undefined;
    return JSON.parse(r.stdout) as RuncState;
  }
}
