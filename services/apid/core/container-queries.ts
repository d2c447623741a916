/**
 * Read-mostly runtime operations on a container: TTY resize, top, stats samples, and
 * docker commit (imaged turns the writable layer into an image while it is frozen).
 */
import { call } from "./backends.ts";
import { ContainerError } from "./container-error.ts";
import type { ContainerManager } from "./container-manager.ts";
import type { ContainerRecord } from "./container-record.ts";
import { HOST_MACHINE } from "./runtime-spec.ts";
import { assertHostRootfs } from "./engine-target.ts";

/** The container's TTY size. */
export async function resizeTty(m: ContainerManager, id: string, height: number, width: number): Promise<void> {
  await call(() => m.backends.machines.resizeTty({ machine: HOST_MACHINE, id, execId: "", height, width }));
  m.emit(m.get(id), "resize", { height: String(height), width: String(width) });
}

/** docker top, from the runtime's ps of the container's processes. */
export async function top(m: ContainerManager, ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
  const rec = m.get(ref);
  if (rec.state.status !== "running" && rec.state.status !== "paused") throw new ContainerError("conflict", `Container ${rec.id} is not running`);
  const res = await call(() => m.backends.machines.top({ machine: HOST_MACHINE, id: rec.id, psArgs }));
  m.emit(rec, "top");
  return { Titles: res.titles, Processes: res.processes.map((p) => p.columns) };
}

/** Docker's stats JSON for one sample (cgroup figures come from the runtime). */
export async function statsSample(m: ContainerManager, rec: ContainerRecord): Promise<Record<string, any>> {
  const res = await call(() => m.backends.machines.stats({ machine: HOST_MACHINE, id: rec.id }));
  return JSON.parse(res.statsJson || "{}") as Record<string, any>;
}

/** docker commit through imaged; a running container is frozen meanwhile (pause=true). */
export async function commit(m: ContainerManager, ref: string, o: { reference: string; comment: string; author: string; configJson: string; changes: string[]; pause: boolean }): Promise<string> {
  const rec = m.get(ref);
  assertHostRootfs("docker commit");
  const freeze = o.pause && rec.state.status === "running";
  if (freeze) await call(() => m.backends.machines.pauseContainer({ machine: HOST_MACHINE, id: rec.id }));
  try {
    const res = await call(() =>
      m.backends.images.commit({ containerId: rec.id, reference: o.reference, comment: o.comment, author: o.author, configJson: o.configJson, changes: o.changes, createdBy: [rec.path, ...rec.args].join(" ") }),
    );
    m.emit(rec, "commit", { comment: o.comment });
    return res.id;
  } finally {
    if (freeze) await call(() => m.backends.machines.resumeContainer({ machine: HOST_MACHINE, id: rec.id })).catch((e) => m.log.warn("resume after commit", { id: rec.id, error: e }));
  }
}
