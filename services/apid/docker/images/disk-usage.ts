/** The image part of GET /system/df: LayersSize and per-image usage. */
import type { DockerApiDeps } from "../deps.ts";
import { imageSummaryJson } from "./image-json.ts";

export async function imageDiskUsage(deps: DockerApiDeps): Promise<{ LayersSize: number; Images: Record<string, unknown>[] }> {
  const res = await deps.clients.images.list({ filters: [], all: true });
  return {
    LayersSize: Number(res.storeSize),
    Images: res.items.map((i) => ({ ...imageSummaryJson(i), SharedSize: Number(i.size - i.uniqueSize) })),
  };
}
