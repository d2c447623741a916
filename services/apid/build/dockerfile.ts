/**
 * Dockerfile parsing as the classic builder reads it (moby/buildkit's parser):
 * parser directives at the top (`escape`; `syntax` and others ignored), line
 * continuations with the escape character, comments, instruction flags, and the
 * JSON (exec) or shell form of the arguments. Substitution happens later, per step,
 * with the environment of that point of the build (see shell-lex.ts).
 */
import { parseError } from "./errors.ts";

export interface Instruction {
  /** Lower-case instruction name ("from", "run", ...). */
  name: string;
  /** First line of the instruction (1-based). */
  line: number;
  /** The instruction as written, continuations joined (Docker's `Step N/M :` text). */
  original: string;
  /** `--name=value` flags before the arguments; a bare `--name` is "true". */
  flags: Map<string, string>;
  /** The arguments after the flags, as written. */
  rest: string;
  /** The exec (JSON array) form, when the arguments are one. */
  json?: string[];
}

export interface Dockerfile {
  escape: string;
  instructions: Instruction[];
}

const KNOWN = new Set(["from", "run", "cmd", "entrypoint", "env", "arg", "label", "maintainer", "expose", "volume", "user", "workdir", "copy", "add", "shell", "stopsignal", "healthcheck", "onbuild"]);
/** Instructions whose arguments may be a JSON array. */
const JSON_FORMS = new Set(["run", "cmd", "entrypoint", "shell", "copy", "add", "volume"]);
const FLAGS: Record<string, string[]> = {
  from: ["platform"],
  run: [],
  copy: ["from", "chown", "chmod"],
  add: ["chown", "chmod", "checksum"],
  healthcheck: ["interval", "timeout", "start-period", "start-interval", "retries"],
};
/** Flags only BuildKit understands: refused with Docker's own wording. */
const BUILDKIT_FLAGS: Record<string, string[]> = { run: ["mount", "network", "security"], copy: ["link", "parents", "exclude"], add: ["link", "keep-git-dir", "exclude"] };

const DIRECTIVE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const HEREDOC = /<<-?\s*(["']?)[A-Za-z_][A-Za-z0-9_]*\1(\s|$)/;

function parseDirectives(lines: string[]): { escape: string; next: number } {
  let escape = "\\";
  const seen = new Set<string>();
  let i = 0;
  for (; i < lines.length; i++) {
    const m = DIRECTIVE.exec(lines[i]!);
    if (!m) break;
    const key = m[1]!.toLowerCase();
    if (seen.has(key)) throw parseError(i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    if (key === "escape") {
      if (m[2] !== "\\" && m[2] !== "`") throw parseError(i + 1, `invalid escape token '${m[2]}' does not match \` or \\`);
      escape = m[2]!;
    }
  }
  return { escape, next: i };
}

/** Splits leading `--flag[=value]` words off the arguments. */
function splitFlags(rest: string): { flags: [string, string][]; rest: string } {
  const flags: [string, string][] = [];
  let s = rest;
  for (;;) {
    const m = /^--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)/.exec(s);
    if (!m) break;
    flags.push([m[1]!, m[2] ?? "true"]);
    s = s.slice(m[0].length);
  }
  return { flags, rest: s };
}

function parseJsonArray(rest: string): string[] | undefined {
  const t = rest.trim();
  if (!t.startsWith("[")) return undefined;
  try {
    const v = JSON.parse(t) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  } catch {}
  return undefined;
}

function instruction(text: string, line: number): Instruction {
  const m = /^\s*(\S+)\s*([\s\S]*?)\s*$/.exec(text)!;
  const word = m[1]!;
  const name = word.toLowerCase();
  if (!KNOWN.has(name)) throw parseError(line, `unknown instruction: ${word.toUpperCase()}`);
  const split = name in FLAGS ? splitFlags(m[2]!) : { flags: [], rest: m[2]! };
  const flags = new Map<string, string>();
  for (const [k, v] of split.flags) {
    if (BUILDKIT_FLAGS[name]?.includes(k))
      throw parseError(line, `the --${k} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`);
    if (!FLAGS[name]!.includes(k)) throw parseError(line, `unknown flag: --${k}`);
    flags.set(k, v);
  }
  const rest = split.rest;
  const json = JSON_FORMS.has(name) ? parseJsonArray(rest) : undefined;
  if ((name === "run" || name === "copy" || name === "add") && !json && HEREDOC.test(rest)) {
    throw parseError(line, "heredocs (<<EOF) are BuildKit-only syntax; the classic builder does not support them: write the commands on RUN lines or COPY a file");
  }
  validate(name, rest, json, line);
  return { name, line, original: text.trim(), flags, rest, json };
}

function validate(name: string, rest: string, json: string[] | undefined, line: number): void {
  const needsArgs = !["cmd", "entrypoint", "healthcheck"].includes(name);
  if (needsArgs && !rest.trim()) throw parseError(line, `${name.toUpperCase()} requires at least one argument`);
  if (name === "shell" && !json) throw parseError(line, "SHELL requires the arguments to be in JSON form");
  if ((name === "copy" || name === "add") && (json ? json.length : rest.trim().split(/\s+/).length) < 2)
    throw parseError(line, `${name.toUpperCase()} requires at least two arguments, but only one was provided. Destination could not be determined`);
  if (name === "env" || name === "label") {
    if (!rest.includes("=") && rest.trim().split(/\s+/).length < 2) throw parseError(line, `${name.toUpperCase()} must have two arguments`);
  }
  if (name === "onbuild") {
    const inner = /^\s*(\S+)/.exec(rest)?.[1]?.toLowerCase() ?? "";
    if (inner === "onbuild") throw parseError(line, "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
    if (inner === "from" || inner === "maintainer") throw parseError(line, `${inner.toUpperCase()} isn't allowed as an ONBUILD trigger`);
  }
  if (name === "healthcheck") {
    const t = rest.trim();
    const kind = /^(\S+)/.exec(t)?.[1]?.toUpperCase() ?? "";
    if (kind !== "NONE" && kind !== "CMD") throw parseError(line, `Unknown type "${kind}" in HEALTHCHECK (try CMD)`);
  }
}

/** Parses a Dockerfile's text into its instructions. */
export function parseDockerfile(text: string): Dockerfile {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const { escape, next } = parseDirectives(lines);
  const cont = new RegExp(`${escape === "\\" ? "\\\\" : "`"}[ \\t]*$`);
  const out: Instruction[] = [];
  let i = next;
  while (i < lines.length) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (!trimmed || trimmed.startsWith("#")) {
      i++;
      continue;
    }
    const start = i + 1;
    let text = "";
    let cur = raw;
    for (;;) {
      if (cont.test(cur)) {
        text += cur.replace(cont, "");
        i++;
        // Comments and blank lines inside a continuation are dropped, as Docker does.
        while (i < lines.length && (!lines[i]!.trim() || lines[i]!.trim().startsWith("#"))) i++;
        if (i >= lines.length) break;
        cur = lines[i]!;
        continue;
      }
      text += cur;
      i++;
      break;
    }
    out.push(instruction(text, start));
  }
  return { escape, instructions: out };
}

/** The exec form of a shell-form command: the shell with the command line appended. */
export function shellForm(shell: string[], cmd: string): string[] {
  return [...shell, cmd];
}
