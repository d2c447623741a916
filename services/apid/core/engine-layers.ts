/**
 * VM mode: the engine machine keeps a layer image mounted after its last container went
 * (so the next `docker run --rm` of the image does not mount it again) until the image
 * is removed or the layer has been idle a while (guest/platform/layer-images.ts). After
 * `docker rmi` / image prune, this names the layers the host removed, so the machine
 * unmounts those no container uses at once, before the removal is answered (nothing of
 * the image is left when the CLI returns). Best effort: the removal has happened either
 * way, and a machine that is not up has nothing mounted (vmm does not boot it for this).
 */
import { createLogger } from "../../../lib/log.ts";
import type { ServiceClients } from "../../../lib/service/clients.ts";
import { ENGINE_IS_VM, ENGINE_MACHINE_NAME } from "./engine-target.ts";

const log = createLogger("apid");

export async function releaseEngineLayers(clients: ServiceClients, removed: { deleted: string }[]): Promise<void> {
  // imaged's removal lists image IDs and the layers' diff IDs; the machine's layer mounts
  // are named by diff ID hex (an image ID matches none).
  const layers = removed.filter((r) => r.deleted).map((r) => r.deleted.replace(/^sha256:/, ""));
  if (!ENGINE_IS_VM || !layers.length) return;
  await clients.machines.releaseLayers({ machine: ENGINE_MACHINE_NAME, layers }).then(
    (r) => r.released.length && log.debug("engine machine released layers", { layers: r.released.length }),
    (err) => log.warn("could not ask the engine machine to release layers", { error: err }),
  );
}
