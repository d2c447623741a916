/**
 * Which OCI runtime the agent runs containers with. On the Linux host: runc (crun does
 * not work there: cgroups v1 hybrid without CAP_SYS_RESOURCE). In a machine (VM mode):
 * crun when it is in the tools image, runs, and the machine has the unified cgroup v2
 * hierarchy it is used with; else runc. crun is C: under TCG it saves the ~1.4 s Go
 * runtime start runc costs on every create, exec fallback, kill and delete.
 * `ARCBOX_OCI_RUNTIME=runc|crun` forces one (measurements, debugging).
 */
import { existsSync } from "node:fs";
import type { Logger } from "../../lib/log.ts";
import { OciRuntime, type OciRuntimeName } from "./runc.ts";
import { toolPath } from "./run-tool.ts";

function findTool(name: OciRuntimeName): string | undefined {
  try {
    return toolPath(name);
  } catch {
    return undefined;
  }
}

export async function selectOciRuntime(root: string, inVm: boolean, log: Logger): Promise<OciRuntime> {
  const forced = process.env.ARCBOX_OCI_RUNTIME;
  const want: OciRuntimeName = forced === "runc" || forced === "crun" ? forced : inVm ? "crun" : "runc";
  if (want === "crun") {
    const crun = findTool("crun");
    const unified = existsSync("/sys/fs/cgroup/cgroup.controllers");
    // Probe: it runs (its loader and libs are there) and says what it is.
    const candidate = crun && (unified || forced) ? new OciRuntime(root, "crun", crun) : undefined;
    const version = await candidate?.version();
    if (candidate && version) {
      log.info("OCI runtime: crun", { version });
      return candidate;
    }
    log.warn("crun is not usable here; using runc", { found: !!crun, cgroupV2: unified });
  }
  return new OciRuntime(root, "runc");
}
