/**
 * VM mode: the engine machine keeps a layer image mounted after its last container went
 * (so the next `docker run --rm` of the image does not mount it again) until the image
 * is removed or the layer has been idle a while (guest/platform/layer-images.ts). After
 * `docker rmi` / image prune, this tells it to let go of the layers whose image file is
 * gone. Best effort and in the background: the removal has happened either way, and a
 * machine that is not up has nothing mounted (vmm does not boot it for this).
 */
import { createLogger } from "../../../lib/log.ts";
import type { ServiceClients } from "../../../lib/service/clients.ts";
import { ENGINE_IS_VM, ENGINE_MACHINE_NAME } from "./engine-target.ts";

const log = createLogger("apid");

export function releaseEngineLayers(clients: ServiceClients): void {
  if (!ENGINE_IS_VM) return;
  void clients.machines.releaseLayers({ machine: ENGINE_MACHINE_NAME }).then(
    (r) => r.released.length && log.debug("engine machine released layers", { layers: r.released.length }),
    (err) => log.warn("could not ask the engine machine to release layers", { error: err }),
  );
}
