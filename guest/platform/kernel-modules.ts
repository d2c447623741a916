/**
 * Kernel modules a container needs, loaded on first use inside a machine. Its kernel's
 * modules are in the tools image (`/opt/arcbox/modules`, no modprobe: no modules.dep at
 * boot); stage 2 loads them all in the background at low priority, so by the first
 * container they are usually there. On a host (no such directory) this does nothing:
 * the host's kernel loads its own.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runTool, toolPath } from "./run-tool.ts";

const GUEST_MODULES = "/opt/arcbox/modules";

/** A module whose init has finished ("live"; built-in modules have no initstate but count). */
function isLive(name: string): boolean {
  try {
    return readFileSync(`/sys/module/${name}/initstate`, "utf8").trim() === "live";
  } catch {
    return existsSync(`/sys/module/${name}`);
  }
}

/**
 * Loads the modules not yet live (insmod of one stage 2 is loading waits for it and
 * answers "exists"). A module that cannot load is left to the mount that needs it to
 * report.
 */
export async function ensureModules(names: readonly string[]): Promise<void> {
  if (!existsSync(GUEST_MODULES)) return;
  for (const name of names) {
    if (isLive(name)) continue;
    const ko = join(GUEST_MODULES, `${name}.ko`);
    if (existsSync(ko)) await runTool([toolPath("insmod"), ko]);
  }
}
