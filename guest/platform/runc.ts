/**
 * The OCI runtime (runc, or crun in a machine), driven as a command-line tool with our
 * own --root. Both take the same commands and write the same JSON log. Errors come
 * back from that log or stderr; "executable file not found" and "permission denied"
 * get their own codes (docker run maps them to exit 127 and 126), in either runtime's
 * wording.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import type { ErrorCode } from "../../lib/errors.ts";
import { GuestError } from "../core/guest-error.ts";
import { runTool, toolPath } from "./run-tool.ts";

export interface RuncState {
  id: string;
  pid: number;
  status: string;
}

/**
 * crun's start failures in runc's words, which the docker CLI reads for exit codes 127
 * and 126 (case-sensitive "no such file or directory", "permission denied"). crun's
 * "open executable" names no path: `executable` (the process's args[0]) fills it in.
 * runc's own messages pass through unchanged.
 */
export function inRuncWording(message: string, executable = ""): string {
  const prefix = "unable to start container process: ";
  const notFound = /executable file `([^`]*)` not found/.exec(message);
  if (notFound) return `${prefix}exec: "${notFound[1]}": executable file not found in $PATH`;
  const execFailed = /exec(?:ve)? `([^`]*)`: (.*)$/s.exec(message);
  if (execFailed) return `${prefix}exec: "${execFailed[1]}": ${execFailed[2]!.toLowerCase()}`;
  const open = /open executable: (.*)$/s.exec(message);
  if (open) return `${prefix}exec: "${executable}": ${/permission denied|operation not permitted/i.test(open[1]!) ? "permission denied" : open[1]!.toLowerCase()}`;
  return message;
}

/** Maps a runc error message to an ArcBox error code. */
export function classifyRuncError(message: string): ErrorCode {
  // Only the process's own executable: `exec: "<path>": <reason>` (a missing bind-mount
  // source is a different error, not docker run's 127). crun's: see inRuncWording.
  const execError = /exec: "[^"]*": (.*)$/s.exec(message)?.[1] ?? "";
  if (/executable file not found|no such file or directory/i.test(execError)) return "not_found";
  if (/permission denied|is a directory/i.test(execError)) return "permission_denied";
  if (/error mounting .*no such file or directory/i.test(message)) return "invalid_argument";
  if (/does not exist|not found/i.test(message) && /container/i.test(message)) return "not_found";
  if (/not running|is paused|not paused|already|cannot (kill|pause|resume)|is running|still running/i.test(message)) return "failed_precondition";
  // crun's kill of a container whose process has just exited (its exit not yet seen):
  // "kill container: No such process" (ESRCH), runc's "container not running".
  if (/no such process/i.test(message)) return "failed_precondition";
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

export type OciRuntimeName = "runc" | "crun";

export class OciRuntime {
  constructor(
    readonly root: string,
    readonly name: OciRuntimeName = "runc",
    readonly binary = toolPath(name),
  ) {}

  private versionText: Promise<string> | undefined;
  /** The first line of `<binary> --version` ("" when it does not answer). */
  version(): Promise<string> {
    this.versionText ??= runTool([this.binary, "--version"]).then(
      (r) => (r.code === 0 ? (r.stdout.split("\n")[0]?.trim() ?? "") : ""),
      () => "",
    );
    return this.versionText;
  }

  private async run(args: string[], stdin?: Uint8Array): Promise<string> {
    const r = await runTool([this.binary, "--root", this.root, ...args], { stdin });
    if (r.code !== 0) throw runcError((r.stderr || r.stdout).trim().replace(/^time="[^"]*" level=\w+ msg="(.*)"$/s, "$1") || `${this.name} ${args[0]} failed with exit ${r.code}`);
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
  /** `scratchFile`: where crun (which reads --resources from a file, not stdin) gets them. */
  async update(id: string, resources: unknown, scratchFile: string) {
    const json = JSON.stringify(resources);
    if (this.name === "runc") return this.run(["update", "--resources", "-", id], new TextEncoder().encode(json));
    writeFileSync(scratchFile, json);
    try {
      return await this.run(["update", "--resources", scratchFile, id]);
    } finally {
      rmSync(scratchFile, { force: true });
    }
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
