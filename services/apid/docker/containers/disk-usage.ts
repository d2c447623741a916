/** Container sizes: `size=1` of list and inspect, and the Containers part of /system/df. */
import { dirSize } from "../../../../lib/dir-size.ts";
import type { ContainerRecord } from "../../core/container-record.ts";
import { summaryView } from "../../core/container-view.ts";
import type { RootfsHelpers } from "../../core/rootfs-helper.ts";
import type { DockerApiDeps } from "../deps.ts";

/**
 * SizeRw (the writable layer, measured where it is: the host's disk, or the engine
 * machine's in VM mode) and SizeRootFs (that plus the image's layers, mounted on the
 * host in both modes), walked on request only.
 */
export async function containerSizes(rec: ContainerRecord, helpers: RootfsHelpers): Promise<{ SizeRw: number; SizeRootFs: number }> {
  const rw = await helpers.sizeRw(rec);
  return { SizeRw: rw, SizeRootFs: rw + rec.rootfs.lowerDirs.reduce((n, d) => n + dirSize(d), 0) };
}

/** Every container as `docker ps -as` lists it (what `docker system df` sums). */
export async function containerDiskUsage(deps: DockerApiDeps): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const rec of deps.containers.list()) out.push({ ...summaryView(rec, deps.health.of(rec.id)), ...(await containerSizes(rec, deps.containers.rootfsHelpers)) });
  return out;
}
