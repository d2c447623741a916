/** Docker image filters (reference, dangling, label, label!, before, since, until) over image rows. */
import type { ImageRow } from "../storage/image-db.ts";
import { ImageError } from "./errors.ts";
import { compileGlob } from "./glob.ts";
import type { ImageStore } from "./image-store.ts";

export interface FilterArg {
  key: string;
  values: string[];
}

const KNOWN = new Set(["reference", "dangling", "label", "before", "since", "until"]);

function parseUntil(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return Date.now() / 1000 - Number(d[1]) * { s: 1, m: 60, h: 3600 }[d[2] as "s" | "m" | "h"];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ImageError("invalid_argument", `invalid filter 'until=${v}'`);
  return t / 1000;
}

export interface FilteredImage {
  row: ImageRow;
  /** Tags and repo digests that passed the reference filter (all when there is none). */
  tags: string[];
  digests: string[];
}

export function filterImages(store: ImageStore, filters: FilterArg[], allowed: Set<string> = KNOWN): FilteredImage[] {
  const by = new Map<string, string[]>();
  for (const f of filters) {
    if (!allowed.has(f.key)) throw new ImageError("invalid_argument", `invalid filter '${f.key}'`);
    by.set(f.key, [...(by.get(f.key) ?? []), ...f.values]);
  }
  const dangling = by.get("dangling");
  if (dangling) for (const v of dangling) if (!["true", "false", "1", "0"].includes(v)) throw new ImageError("invalid_argument", `invalid filter 'dangling=${v}'`);
  const createdOf = (ref: string) => store.resolve(ref).created;
  const before = by.get("before")?.map(createdOf);
  const since = by.get("since")?.map(createdOf);
  const until = by.get("until")?.map(parseUntil);
  const refPatterns = by.get("reference")?.map(compileGlob);
  const labels = by.get("label");
  const notLabels = by.get("label!");

  const out: FilteredImage[] = [];
  for (const row of store.db.allImages()) {
    let tags = store.repoTags(row.id);
    let digests = store.repoDigests(row.id);
    if (dangling) {
      const want = dangling.some((v) => v === "true" || v === "1");
      if (want !== (tags.length === 0)) continue;
    }
    if (before && !before.every((t) => row.created < t)) continue;
    if (since && !since.every((t) => row.created > t)) continue;
    if (until && !until.every((t) => row.created < t)) continue;
    if (labels || notLabels) {
      const have = (store.config(row).config?.Labels ?? {}) as Record<string, string>;
      const matches = (l: string) => {
        const eq = l.indexOf("=");
        return eq < 0 ? Object.hasOwn(have, l) : Object.hasOwn(have, l.slice(0, eq)) && have[l.slice(0, eq)] === l.slice(eq + 1);
      };
      if (labels && !labels.every(matches)) continue;
      if (notLabels?.some(matches)) continue;
    }
    if (refPatterns) {
      // As Docker's FamiliarMatch: the whole familiar reference, or its name alone.
      const matches = (name: string) => {
        const repo = name.replace(/@.*$/, "").replace(/:[^:/]+$/, "");
        return refPatterns.some((match) => match(name) || match(repo));
      };
      tags = tags.filter(matches);
      digests = digests.filter(matches);
      if (tags.length === 0 && digests.length === 0) continue;
    }
    out.push({ row, tags, digests });
  }
  return out;
}
