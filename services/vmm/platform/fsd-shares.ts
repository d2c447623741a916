/** MachineShares through fsd's ShareService (one arcbox-virtiofsd per machine mount). */
import type { Client } from "@connectrpc/connect";
import type { ShareService } from "../../../proto/gen/arcbox/volumes/v1/shares_pb.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { MachineShares, RunningShare } from "../core/machine-shares.ts";

export function fsdShares(client: () => Client<typeof ShareService>): MachineShares {
  return {
    async start(machine, mounts): Promise<RunningShare[]> {
      try {
        // Servers left from an earlier definition (a mount removed since) go first.
        const wanted = new Set(mounts.map((m) => m.tag));
        const { shares } = await client().listShares({ machine });
        for (const s of shares) if (!wanted.has(s.tag)) await client().stopShare({ machine, tag: s.tag });
        const out: RunningShare[] = [];
        for (const m of mounts) {
          const r = await client().startShare({ machine, tag: m.tag, hostDir: m.hostDir, readOnly: m.readOnly, cacheMode: m.cacheMode });
          out.push({ tag: m.tag, socket: r.socketPath });
        }
        return out;
      } catch (err) {
        throw fromConnectError(err);
      }
    },
    async stop(machine): Promise<void> {
      try {
        await client().stopShare({ machine, tag: "" });
      } catch (err) {
        throw fromConnectError(err);
      }
    },
  };
}
