/**
 * Dockerfile instructions allowed by `docker import --change` / `commit --change`
 * (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD),
 * applied to an image's container config.
 */
import { ImageError } from "./errors.ts";

type Config = Record<string, unknown>;

/** JSON array form, or shell form wrapped in /bin/sh -c. */
function command(arg: string): string[] {
  const t = arg.trim();
  if (t.startsWith("[")) {
    try {
      const v = JSON.parse(t);
      if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
    } catch {}
  }
  return ["/bin/sh", "-c", t];
}

/** KEY=VALUE pairs (quoted values allowed) or the legacy "KEY VALUE" form. */
function pairs(arg: string): [string, string][] {
  const t = arg.trim();
  if (!t.includes("=")) {
    const sp = t.search(/\s/);
    return sp < 0 ? [[t, ""]] : [[t.slice(0, sp), t.slice(sp).trim()]];
  }
  const out: [string, string][] = [];
  for (const m of t.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|'[^']*'|\S*)/g)) {
    let v = m[2]!;
    if (v.startsWith('"')) v = JSON.parse(v);
    else if (v.startsWith("'")) v = v.slice(1, -1);
    out.push([m[1]!, v]);
  }
  return out;
}

export function applyChanges(base: Config, changes: string[]): Config {
  const cfg: Config = { ...base };
  for (const change of changes) {
    for (const line of change.split("\n")) {
      const t = line.trim();
      if (!t) continue;
      const sp = t.search(/\s/);
      const op = (sp < 0 ? t : t.slice(0, sp)).toUpperCase();
      const arg = sp < 0 ? "" : t.slice(sp + 1);
      switch (op) {
        case "CMD":
          cfg.Cmd = command(arg);
          break;
        case "ENTRYPOINT":
          cfg.Entrypoint = command(arg);
          break;
        case "ENV": {
          const env = ((cfg.Env as string[] | undefined) ?? []).slice();
          for (const [k, v] of pairs(arg)) {
            const i = env.findIndex((e) => e.startsWith(`${k}=`));
            if (i >= 0) env[i] = `${k}=${v}`;
            else env.push(`${k}=${v}`);
          }
          cfg.Env = env;
          break;
        }
        case "LABEL":
          cfg.Labels = { ...((cfg.Labels as Record<string, string>) ?? {}), ...Object.fromEntries(pairs(arg)) };
          break;
        case "EXPOSE": {
          const ports = { ...((cfg.ExposedPorts as Record<string, object>) ?? {}) };
          for (const p of arg.split(/\s+/).filter(Boolean)) ports[p.includes("/") ? p : `${p}/tcp`] = {};
          cfg.ExposedPorts = ports;
          break;
        }
        case "VOLUME": {
          const vols = { ...((cfg.Volumes as Record<string, object>) ?? {}) };
          const list = arg.trim().startsWith("[") ? (JSON.parse(arg) as string[]) : arg.split(/\s+/).filter(Boolean);
          for (const v of list) vols[v] = {};
          cfg.Volumes = vols;
          break;
        }
        case "USER":
          cfg.User = arg.trim();
          break;
        case "WORKDIR":
          cfg.WorkingDir = arg.trim();
          break;
        case "STOPSIGNAL":
          cfg.StopSignal = arg.trim();
          break;
        case "ONBUILD":
          cfg.OnBuild = [...((cfg.OnBuild as string[]) ?? []), arg.trim()];
          break;
        default:
          throw new ImageError("invalid_argument", `${op} is not a valid change command`);
      }
    }
  }
  return cfg;
}
