/**
 * Pure evaluation of the metadata instructions (ENV, LABEL, CMD, EXPOSE, ...) against
 * an image config, and the argument parsing they share. No I/O here.
 */
import { BuildError } from "./errors.ts";
import type { Instruction } from "./dockerfile.ts";
import { processWord, processWords, type Env } from "./shell-lex.ts";

export interface HealthConfig {
  Test: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The container config of an image (Docker's `config` object). */
export interface RunConfig {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  User?: string;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  Healthcheck?: HealthConfig;
  StopSignal?: string;
  Shell?: string[];
  OnBuild?: string[] | null;
  [k: string]: unknown;
}

export const DEFAULT_SHELL = ["/bin/sh", "-c"];
export const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Splits on unquoted whitespace keeping quotes and escapes (Docker's parseWords). */
export function splitWords(s: string, escape: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote = "";
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (!quote && /\s/.test(c)) {
      if (inWord) out.push(cur), (cur = ""), (inWord = false);
      continue;
    }
    inWord = true;
    if (c === escape && i + 1 < s.length && quote !== "'") {
      cur += c + s[++i];
      continue;
    }
    if (quote) {
      if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    cur += c;
  }
  if (inWord) out.push(cur);
  return out;
}

/** `KEY=value ...` pairs (or the legacy `KEY value with spaces`), substituted. */
export function parseNameValues(ins: Instruction, env: Env, escape: string): [string, string][] {
  const words = splitWords(ins.rest, escape);
  if (words.length === 0) throw new BuildError(`${ins.name.toUpperCase()} requires at least one argument`);
  if (!words[0]!.includes("=")) {
    const key = words[0]!;
    const value = ins.rest.trim().slice(key.length).trim();
    if (!value && ins.name === "env") throw new BuildError(`ENV names can not be blank`);
    return [[processWord(key, env, escape), processWord(value, env, escape)]];
  }
  return words.map((w) => {
    const eq = w.indexOf("=");
    if (eq < 0) throw new BuildError(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    const key = processWord(w.slice(0, eq), env, escape);
    if (!key) throw new BuildError(`${ins.name.toUpperCase()} names can not be blank`);
    return [key, processWord(w.slice(eq + 1), env, escape)];
  });
}

export function envMap(list: string[] | null | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of list ?? []) {
    const i = e.indexOf("=");
    m.set(i < 0 ? e : e.slice(0, i), i < 0 ? "" : e.slice(i + 1));
  }
  return m;
}

export function setEnv(list: string[] | null | undefined, key: string, value: string): string[] {
  const out = (list ?? []).filter((e) => (e.includes("=") ? e.slice(0, e.indexOf("=")) : e) !== key);
  out.push(`${key}=${value}`);
  return out;
}

/** The command of CMD/ENTRYPOINT/RUN: the exec form, or the shell form through the stage's shell. */
export function commandOf(ins: Instruction, shell: string[]): string[] {
  if (ins.json) return ins.json;
  return [...shell, ins.rest];
}

/** Go's time.ParseDuration subset that Docker accepts for HEALTHCHECK, in nanoseconds. */
export function parseDuration(flag: string, v: string): number {
  if (v === "0") return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let pos = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  if (!v || pos !== v.length) throw new BuildError(`invalid value for --${flag}: time: invalid duration "${v}"`);
  return Math.round(total);
}

function healthcheck(ins: Instruction, escape: string): HealthConfig {
  const t = ins.rest.trim();
  const m = /^(\S+)\s*([\s\S]*)$/.exec(t)!;
  if (m[1]!.toUpperCase() === "NONE") {
    if (m[2]) throw new BuildError("HEALTHCHECK NONE takes no arguments");
    return { Test: ["NONE"] };
  }
  const args = m[2]!;
  let json: string[] | undefined;
  if (args.startsWith("[")) {
    try {
      const v = JSON.parse(args) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) json = v as string[];
    } catch {}
  }
  if (!json && !args) throw new BuildError("Missing command after HEALTHCHECK CMD");
  const hc: HealthConfig = { Test: json ? ["CMD", ...json] : ["CMD-SHELL", args] };
  void escape;
  const f = ins.flags;
  const dur = (name: string) => {
    const v = f.get(name);
    if (v === undefined) return undefined;
    const d = parseDuration(name, v);
    if (d !== 0 && d < 1e6) throw new BuildError(`Interval "${name}" cannot be less than 1ms`);
    return d;
  };
  const interval = dur("interval");
  const timeout = dur("timeout");
  const start = dur("start-period");
  const startInterval = dur("start-interval");
  if (interval !== undefined) hc.Interval = interval;
  if (timeout !== undefined) hc.Timeout = timeout;
  if (start !== undefined) hc.StartPeriod = start;
  if (startInterval !== undefined) hc.StartInterval = startInterval;
  if (f.has("retries")) {
    const r = Number(f.get("retries"));
    if (!Number.isInteger(r) || r < 0) throw new BuildError(`--retries must be a non-negative integer`);
    hc.Retries = r;
  }
  return hc;
}

function exposedPorts(words: string[]): string[] {
  const out: string[] = [];
  for (const w of words) {
    const [range, proto = "tcp"] = w.split("/", 2) as [string, string | undefined];
    const m = /^(\d+)(?:-(\d+))?$/.exec(range.replace(/^.*:/, ""));
    if (!m) throw new BuildError(`Invalid containerPort: ${w}`);
    const lo = Number(m[1]);
    const hi = m[2] ? Number(m[2]) : lo;
    if (hi < lo || hi > 65535) throw new BuildError(`Invalid range specified for port: ${w}`);
    for (let p = lo; p <= hi; p++) out.push(`${p}/${proto.toLowerCase()}`);
  }
  return out;
}

export interface MetaState {
  config: RunConfig;
  /** CMD was set in this stage (ENTRYPOINT then keeps it). */
  cmdSet: boolean;
}

/**
 * Applies a metadata-only instruction to the config. Returns the text recorded in the
 * image history after Docker's `/bin/sh -c #(nop) ` prefix.
 */
export function applyMetadata(ins: Instruction, s: MetaState, env: Env, escape: string): string {
  const c = s.config;
  const shell = c.Shell?.length ? c.Shell : DEFAULT_SHELL;
  switch (ins.name) {
    case "env": {
      const pairs = parseNameValues(ins, env, escape);
      for (const [k, v] of pairs) c.Env = setEnv(c.Env, k, v);
      return `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(" ")}`;
    }
    case "label": {
      const pairs = parseNameValues(ins, env, escape);
      c.Labels = { ...(c.Labels ?? {}) };
      for (const [k, v] of pairs) c.Labels[k] = v;
      return `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(" ")}`;
    }
    case "maintainer":
      return `MAINTAINER ${ins.rest}`;
    case "cmd": {
      c.Cmd = commandOf(ins, shell);
      s.cmdSet = true;
      return `CMD ${JSON.stringify(c.Cmd)}`;
    }
    case "entrypoint": {
      c.Entrypoint = ins.json ?? (ins.rest ? [...shell, ins.rest] : null);
      if (!s.cmdSet) c.Cmd = null;
      return `ENTRYPOINT ${JSON.stringify(c.Entrypoint ?? [])}`;
    }
    case "expose": {
      const ports = exposedPorts(processWords(ins.rest, env, escape));
      c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
      for (const p of ports) c.ExposedPorts[p] = {};
      return `EXPOSE ${ports.join(" ")}`;
    }
    case "volume": {
      const vols = (ins.json ?? processWords(ins.rest, env, escape)).map((v) => v.trim());
      c.Volumes = { ...(c.Volumes ?? {}) };
      for (const v of vols) {
        if (!v) throw new BuildError("VOLUME specified can not be an empty string");
        c.Volumes[v] = {};
      }
      return `VOLUME ${JSON.stringify(vols)}`;
    }
    case "user": {
      c.User = processWord(ins.rest.trim(), env, escape);
      return `USER ${c.User}`;
    }
    case "workdir": {
      const dir = processWord(ins.rest.trim(), env, escape);
      const base = c.WorkingDir || "/";
      c.WorkingDir = dir.startsWith("/") ? normalizeAbs(dir) : normalizeAbs(`${base}/${dir}`);
      return `WORKDIR ${c.WorkingDir}`;
    }
    case "shell": {
      c.Shell = ins.json!;
      return `SHELL ${JSON.stringify(c.Shell)}`;
    }
    case "stopsignal": {
      const sig = processWord(ins.rest.trim(), env, escape);
      if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/.test(sig)) throw new BuildError(`Invalid signal: ${sig}`);
      c.StopSignal = sig;
      return `STOPSIGNAL ${sig}`;
    }
    case "healthcheck": {
      c.Healthcheck = healthcheck(ins, escape);
      return `HEALTHCHECK &{${JSON.stringify(c.Healthcheck.Test)} ${c.Healthcheck.Interval ?? 0} ${c.Healthcheck.Timeout ?? 0} ${c.Healthcheck.StartPeriod ?? 0} ${c.Healthcheck.Retries ?? 0}}`;
    }
    case "onbuild": {
      const m = /^\s*(\S+)([\s\S]*)$/.exec(ins.rest)!;
      const trigger = `${m[1]!.toUpperCase()}${m[2]}`;
      c.OnBuild = [...(c.OnBuild ?? []), trigger];
      return `ONBUILD ${trigger}`;
    }
    default:
      throw new BuildError(`not a metadata instruction: ${ins.name}`);
  }
}

function normalizeAbs(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (!seg || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join("/")}`;
}

export const METADATA = new Set(["env", "label", "maintainer", "cmd", "entrypoint", "expose", "volume", "user", "workdir", "shell", "stopsignal", "healthcheck", "onbuild"]);
