/**
 * Docker's `filters` query parameter (`{"key":{"value":true}}` or `{"key":["value"]}`),
 * parsed once for every list, prune and events endpoint, and the shared value forms.
 */
import { ArcboxError } from "../../../lib/errors.ts";

export type Filters = Map<string, string[]>;

/** Parses `filters`; with `allowed`, an unknown key is a 400 here (else its owner checks). */
export function parseFilters(raw: string | undefined | null, allowed?: string[]): Filters {
  const out: Filters = new Map();
  if (!raw) return out;
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch {
    throw new ArcboxError("invalid_argument", `invalid filter: ${raw}`);
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new ArcboxError("invalid_argument", "invalid filter: expected an object");
  for (const [k, v] of Object.entries(obj)) {
    if (allowed && !allowed.includes(k)) throw new ArcboxError("invalid_argument", `invalid filter '${k}'`);
    const values = Array.isArray(v) ? v.map(String) : typeof v === "object" && v ? Object.keys(v).filter((x) => (v as Record<string, unknown>)[x]) : [String(v)];
    out.set(k, values);
  }
  return out;
}

/** "label" filter values: "key" or "key=value". */
export function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

export function boolFilter(f: Filters, key: string): boolean | undefined {
  const v = f.get(key)?.[0];
  if (v === undefined) return undefined;
  if (v === "true" || v === "1") return true;
  if (v === "false" || v === "0") return false;
  throw new ArcboxError("invalid_argument", `invalid filter '${key}=${v}'`);
}

/** "until" filter: Unix seconds, RFC 3339 or a Go-style duration ("10m", "24h") ago. */
export function untilUnix(f: Filters): number {
  const v = f.get("until")?.[0];
  if (!v) return 0;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.floor(Number(v));
  const dur = /^(\d+)(s|m|h)$/.exec(v);
  if (dur) return Math.floor(Date.now() / 1000) - Number(dur[1]) * { s: 1, m: 60, h: 3600 }[dur[2] as "s" | "m" | "h"];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ArcboxError("invalid_argument", `invalid filter 'until=${v}'`);
  return Math.floor(t / 1000);
}
