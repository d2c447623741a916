/**
 * Docker's `filters` query parameter (`{"key":{"value":true}}` or `{"key":["value"]}`),
 * parsed once for every list, prune and events endpoint. Each endpoint names its
 * accepted keys and how each key's values parse (`FILTERS`); the result is typed per
 * endpoint. Anything that does not parse (malformed JSON, an unknown key, a bad
 * until/dangling/status value) is a 400 here, before the endpoint touches anything:
 * a prune that ignored a bad filter would delete more than the user asked for.
 */
import { z } from "zod";
import { ArcboxError } from "../../../lib/errors.ts";

const invalid = (message: string) => new ArcboxError("invalid_argument", message);

/** Docker's invalidFilter wording: `invalid filter 'key=v1,v2'`. */
const invalidValue = (key: string, values: string[]) => invalid(`invalid filter '${key}=${values.join(",")}'`);

/** Turns one key's values into what the endpoint uses; throws a 400 when they do not parse. */
export type ValueParser<T> = (values: string[], key: string) => T;

/** Any strings (names, IDs, label expressions "key" or "key=value"). */
export const strings: ValueParser<string[]> = (values) => values;

/** One of a closed set of words. */
export function oneOf<const W extends string>(words: readonly W[], message?: (v: string) => string): ValueParser<W[]> {
  return (values, key) => {
    for (const v of values) if (!(words as readonly string[]).includes(v)) throw invalid(message ? message(v) : `invalid filter '${key}=${v}'`);
    return values as W[];
  };
}

/** Integers (e.g. exit codes). */
export const ints: ValueParser<number[]> = (values, key) =>
  values.map((v) => {
    if (!/^-?\d{1,10}$/.test(v)) throw invalid(`invalid filter '${key}=${v}'`);
    return Number(v);
  });

/** Docker's GetBoolOrDefault: "1"/"true" or "0"/"false", and not both. */
export const bool: ValueParser<boolean> = (values, key) => {
  const truthy = values.some((v) => v === "1" || v.toLowerCase() === "true");
  const falsy = values.some((v) => v === "0" || v.toLowerCase() === "false");
  const other = values.some((v) => !["1", "0", "true", "false"].includes(v.toLowerCase()));
  if (truthy === falsy || other) throw invalidValue(key, values);
  return truthy;
};

/** "until": one timestamp or duration ago, as Unix seconds. */
export const until: ValueParser<number> = (values, key) => {
  if (values.length !== 1) throw invalid(values.length ? `more than one ${key} filter specified` : `invalid filter '${key}'`);
  return parseTimestamp(values[0]!);
};

const GO_DURATION = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, μs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?)?(Z|[+-]\d{2}:\d{2})?$/i;

/**
 * Docker's timestamp values (api/types/time GetTimestamp): a Go duration before now
 * ("10m", "1h30m"), an RFC 3339 date or date-time (local time without a zone), or
 * Unix seconds ("1700000000", "1700000000.5"). Returns Unix seconds.
 */
export function parseTimestamp(value: string): number {
  if (value !== "0" && GO_DURATION.test(value)) {
    const sign = value.startsWith("-") ? -1 : 1;
    let seconds = 0;
    for (const m of value.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) seconds += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    return Date.now() / 1000 - sign * seconds;
  }
  const dt = DATE_TIME.exec(value);
  if (dt) {
    const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", zone] = dt;
    const t = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s}${frac}${zone ? zone.toUpperCase() : ""}`);
    // Date.parse rolls 2024-02-31 over to March; Go refuses it.
    const probe = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
    if (!Number.isNaN(t) && probe.getUTCMonth() === Number(mo) - 1 && probe.getUTCDate() === Number(d)) return t / 1000;
    throw invalid(`parsing time "${value}": not a valid date and time`);
  }
  if (/^\d{1,12}(\.\d{1,9})?$/.test(value)) return Number(value);
  throw invalid(`failed to parse value as time or duration: "${value}"`);
}

/** Per-key value parsers of one endpoint; a key not listed is refused. */
export type FilterSpec = Record<string, ValueParser<unknown>>;

/** What `parseFilters` returns for a spec: each key present maps to its parsed value. */
export type ParsedFilters<S extends FilterSpec> = { [K in keyof S]?: ReturnType<S[K]> };

const label = strings;

/** The accepted filters of every endpoint that takes them, as Docker Engine 28 accepts them. */
export const FILTERS = {
  containerList: {
    id: strings,
    name: strings,
    label,
    status: oneOf(["created", "restarting", "running", "removing", "paused", "exited", "dead"] as const, (v) => `invalid filter 'status=${v}'`),
    exited: ints,
    ancestor: strings,
    before: strings,
    since: strings,
    network: strings,
    volume: strings,
    "is-task": bool,
    health: oneOf(["starting", "healthy", "unhealthy", "none"] as const, (v) => `Unrecognised filter value for health: ${v}`),
    publish: strings,
    expose: strings,
  },
  containerPrune: { until, label, "label!": label },
  imageList: { reference: strings, dangling: bool, label, before: strings, since: strings, until },
  imagePrune: { dangling: bool, label, "label!": label, until },
  imageSearch: { "is-automated": bool, "is-official": bool, stars: ints },
  networkList: {
    dangling: bool,
    driver: strings,
    id: strings,
    label,
    name: strings,
    scope: oneOf(["swarm", "global", "local"] as const, (v) => `invalid filter 'scope=${v}'`),
    type: oneOf(["custom", "builtin"] as const, (v) => `invalid filter: 'type'='${v}'`),
  },
  networkPrune: { until, label, "label!": label },
  volumeList: { dangling: bool, driver: strings, label, "label!": label, name: strings },
  volumePrune: { label, "label!": label, all: bool },
  buildPrune: { until, "unused-for": until, id: strings, parent: strings, type: strings, description: strings, inuse: strings, shared: strings, private: strings },
  pluginList: { capability: strings, enabled: bool },
  /** Swarm object lists: parsed for their syntax only (the answer is always "not a manager"). */
  swarmList: {
    id: strings,
    name: strings,
    label,
    mode: strings,
    node: strings,
    "desired-state": strings,
    role: strings,
    membership: strings,
    service: strings,
    "service-name": strings,
    "service-label": strings,
    names: strings,
  },
  events: {
    config: strings,
    container: strings,
    daemon: strings,
    event: strings,
    image: strings,
    label,
    network: strings,
    node: strings,
    plugin: strings,
    scope: strings,
    secret: strings,
    service: strings,
    type: strings,
    volume: strings,
  },
} satisfies Record<string, FilterSpec>;

/** Docker's two JSON forms: {"key":["v"]} and {"key":{"v":true}} (every listed value counts). */
const rawFiltersSchema = z.record(z.string(), z.union([z.array(z.string()), z.record(z.string(), z.boolean())])).nullable();

/** Parses `filters` against an endpoint's spec; any key or value it cannot parse is a 400. */
export function parseFilters<S extends FilterSpec>(raw: string | undefined | null, spec: S): ParsedFilters<S> {
  const out: Record<string, unknown> = {};
  if (!raw) return out as ParsedFilters<S>;
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw invalid(`invalid filter: ${(err as Error).message}`);
  }
  const parsed = rawFiltersSchema.safeParse(json);
  if (!parsed.success) throw invalid(`invalid filter: expected {"key": ["value", ...]}`);
  for (const [key, v] of Object.entries(parsed.data ?? {})) {
    const parse = Object.hasOwn(spec, key) ? spec[key] : undefined;
    if (!parse) throw invalid(`invalid filter '${key}'`);
    out[key] = parse(Array.isArray(v) ? v : Object.keys(v), key);
  }
  return out as ParsedFilters<S>;
}

/** "label" filter values: "key" or "key=value". */
export function labelMatches(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq < 0) return Object.hasOwn(labels, filter);
  const key = filter.slice(0, eq);
  return Object.hasOwn(labels, key) && labels[key] === filter.slice(eq + 1);
}
