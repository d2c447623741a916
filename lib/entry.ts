/**
 * Chooses how to run a process entry: the bundle in dist/ when it is newer than every
 * source file, otherwise the TypeScript source (so an edit is never shadowed by a
 * stale bundle). ARCBOX_FROM_SOURCE=1 forces the sources.
 */
import { existsSync, readdirSync, statSync, type Dirent } from "node:fs";
import { join } from "node:path";

/**
 * Set with `bun build --define` where a bundle's location is fixed and import.meta.dir
 * would not say it: the guest agent's CommonJS bundle (scripts/build-guest.sh), where
 * bun inlines import.meta.dir as the build machine's source directory.
 */
declare const ARCBOX_BUNDLE_ROOT: string | undefined;
export const REPO_ROOT = typeof ARCBOX_BUNDLE_ROOT === "string" ? ARCBOX_BUNDLE_ROOT : join(import.meta.dir, "..");
const SOURCE_DIRS = ["lib", "services", "cli", "guest", "native", "proto/gen"];

let newestSource: number | undefined;
function newestSourceMtime(): number {
  if (newestSource !== undefined) return newestSource;
  let newest = 0;
  const walk = (dir: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  for (const d of SOURCE_DIRS) walk(join(REPO_ROOT, d));
  newestSource = newest;
  return newest;
}

/**
 * The script to run for `bundleName` (dist/<bundleName>.js) whose source is `sourcePath`.
 * ARCBOX_BUNDLES (set by bin/arcbox, which has already compared the mtimes) skips the
 * walk over the source tree: "1" bundles are current, "0" they are not.
 */
export function resolveEntry(bundleName: string, sourcePath: string): string {
  if (process.env.ARCBOX_FROM_SOURCE === "1" || process.env.ARCBOX_BUNDLES === "0") return sourcePath;
  const bundle = join(REPO_ROOT, "dist", `${bundleName}.js`);
  if (process.env.ARCBOX_BUNDLES === "1") return existsSync(bundle) ? bundle : sourcePath;
  if (existsSync(bundle) && statSync(bundle).mtimeMs >= newestSourceMtime()) return bundle;
  return sourcePath;
}
