/**
 * VM mode: named volumes' data on the engine machine's disk, under the agent's volume
 * root (guest/vm/machine-volumes.ts), reached through vmm's MachineService.VolumeOp.
 * vmm boots the machine for a prepare (a container is about to use the volume) but
 * never for a removal (done at its next boot) or for sizes (-1 while it is down).
 */
import type { Client } from "@connectrpc/connect";
import { join } from "node:path";
import { ENGINE_MACHINE } from "../../../lib/engine-mode.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { MachineService } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { GUEST_VOLUMES_ROOT } from "../../../guest/vm/engine-layout.ts";
import type { ImageFill, VolumeData } from "../core/volume-data.ts";
import { VolumeError } from "../core/volume-error.ts";

export class MachineVolumeData implements VolumeData {
  constructor(private readonly machines: () => Client<typeof MachineService>) {}

  path(name: string): string {
    return join(GUEST_VOLUMES_ROOT, name, "_data");
  }

  async prepare(name: string, fill?: ImageFill): Promise<void> {
    await this.op({ op: "prepare", names: [name], lowerDirs: fill?.lowerDirs ?? [], target: fill?.target ?? "" }, `preparing volume ${name} in the engine machine`);
  }

  async remove(name: string): Promise<void> {
    await this.op({ op: "remove", names: [name], lowerDirs: [], target: "" }, `removing volume ${name} in the engine machine`);
  }

  async sizes(names: string[]): Promise<number[]> {
    if (names.length === 0) return [];
    try {
      const r = await this.machines().volumeOp({ machine: ENGINE_MACHINE, op: "sizes", names });
      return names.map((_, i) => Number(r.sizes[i] ?? -1n));
    } catch {
      return names.map(() => -1); // sizes are best effort, as du's on the host
    }
  }

  private async op(req: { op: string; names: string[]; lowerDirs: string[]; target: string }, what: string) {
    try {
      return await this.machines().volumeOp({ machine: ENGINE_MACHINE, ...req });
    } catch (err) {
      const e = fromConnectError(err);
      throw new VolumeError(e.code, `${what}: ${e.message}`, { cause: err });
    }
  }
}
