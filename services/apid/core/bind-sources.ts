/** Host sources of bind mounts, checked (or created, for -v) when a container is created. */
import { existsSync, mkdirSync } from "node:fs";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";

export function ensureBindSources(mounts: ContainerRecord["mounts"]): void {
  for (const m of mounts) {
    if (m.Type !== "bind") continue;
    if (existsSync(m.Source)) continue;
    if (m.options?.includes("must-exist")) throw new ContainerError("invalid_argument", `invalid mount config for type "bind": bind source path does not exist: ${m.Source}`);
    // -v /host/path:/x creates the host directory, as Docker does.
    mkdirSync(m.Source, { recursive: true, mode: 0o755 });
  }
  for (const m of mounts) if (m.Type === "bind") m.options = (m.options ?? []).filter((o) => o !== "must-exist" && o !== "create");
}
