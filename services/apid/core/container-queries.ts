/**
 * Read-mostly runtime operations on a container: TTY resize, top, stats samples, and
 * docker commit (imaged turns the writable layer into an image while it is frozen).
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { call, type Backends } from "./backends.ts";
import type { CommitOptions, ContainerEvents, ContainerLookup, ContainerPauser, ContainerRuntimeQueries } from "./container-backends.ts";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";
import { HOST_MACHINE } from "./runtime-spec.ts";
import { spoolLayerTar } from "./rootfs-cp.ts";
import type { RootfsHelpers } from "./rootfs-helper.ts";

export class ContainerQueries implements ContainerRuntimeQueries {
  constructor(
    private readonly containers: ContainerLookup & ContainerEvents & ContainerPauser & { readonly rootfsHelpers: RootfsHelpers; containerDir(id: string): string },
    private readonly backends: Backends,
  ) {}

  /** The container's TTY size. */
  async resizeTty(id: string, height: number, width: number): Promise<void> {
    await call(() => this.backends.machines.resizeTty({ machine: HOST_MACHINE, id, execId: "", height, width }));
    this.containers.emit(this.containers.get(id), "resize", { height: String(height), width: String(width) });
  }

  /** docker top, from the runtime's ps of the container's processes. */
  async top(ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const rec = this.containers.get(ref);
    if (rec.state.status !== "running" && rec.state.status !== "paused") throw new ContainerError("conflict", `Container ${rec.id} is not running`);
    const res = await call(() => this.backends.machines.top({ machine: HOST_MACHINE, id: rec.id, psArgs }));
    this.containers.emit(rec, "top");
    return { Titles: res.titles, Processes: res.processes.map((p) => p.columns) };
  }

  /** Docker's stats JSON for one sample (cgroup figures come from the runtime). */
  async statsSample(rec: ContainerRecord): Promise<Record<string, unknown>> {
    const res = await call(() => this.backends.machines.stats({ machine: HOST_MACHINE, id: rec.id }));
    return JSON.parse(res.statsJson || "{}") as Record<string, unknown>;
  }

  /**
   * docker commit through imaged. With pause (the default) a running container is paused
   * meanwhile, as dockerd does (pause and unpause events, inspect says "paused"); with
   * pause=false it keeps running while its writable layer is read.
   */
  async commit(ref: string, o: CommitOptions): Promise<string> {
    const rec = this.containers.get(ref);
    const run = async () => {
      const layerTar = await spoolLayerTar(this.containers.rootfsHelpers, rec, join(this.containers.containerDir(""), "..", "tmp"));
      const res = await call(() =>
        this.backends.images.commit({
          layerTar: layerTar ?? "",
          containerId: rec.id,
          reference: o.reference,
          comment: o.comment,
          author: o.author,
          configJson: o.configJson,
          changes: o.changes,
          createdBy: [rec.path, ...rec.args].join(" "),
        }),
      ).finally(() => layerTar && rmSync(layerTar, { force: true }));
      this.containers.emit(rec, "commit", { comment: o.comment });
      return res.id;
    };
    return o.pause ? this.containers.whilePaused(rec.id, run) : run();
  }
}
