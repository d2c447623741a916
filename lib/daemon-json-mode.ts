/**
 * The engine-mode key of `$ARCBOX_HOME/daemon.json`, checked with zod. Its own module so
 * that engine-mode.ts can load it (and zod) only when a daemon.json exists: a dynamic
 * `import("zod")` would make the bundler keep all of zod (~570 KB, its locales too) as
 * one chunk for every process that shares it, where a static named import is tree-shaken.
 */
import { z } from "zod";

const daemonJsonSchema = z.object({ vm: z.boolean().optional() }).passthrough();

/** daemon.json's `vm`; throws zod's error when it is not a boolean. */
export function daemonJsonVm(json: unknown): boolean {
  return daemonJsonSchema.parse(json).vm === true;
}
