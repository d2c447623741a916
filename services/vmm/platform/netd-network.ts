/** MachineNetwork through netd's MachineNetworkService (TAP, MAC and lease per machine). */
import type { Client } from "@connectrpc/connect";
import type { MachineNetworkService } from "../../../proto/gen/arcbox/networks/v1/machine_net_pb.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import type { ForwardedPort, MachineNetwork, MachineNic } from "../core/machine-network.ts";

export function netdNetwork(client: () => Client<typeof MachineNetworkService>): MachineNetwork {
  return {
    async attach(machine: string): Promise<MachineNic> {
      try {
        const r = await client().attachMachine({ machine });
        return { tap: r.tap, mac: r.mac, ip: r.ip };
      } catch (err) {
        throw fromConnectError(err);
      }
    },
    async detach(machine: string): Promise<void> {
      try {
        await client().detachMachine({ machine });
      } catch (err) {
        throw fromConnectError(err);
      }
    },
    async setPorts(machine: string, ports: ForwardedPort[]) {
      try {
        const r = await client().setMachinePorts({ machine, ports });
        return { ports: r.ports.map((p) => ({ protocol: p.protocol, port: p.hostPort || p.port, hostIp: p.hostIp })), failed: r.failed };
      } catch (err) {
        throw fromConnectError(err);
      }
    },
  };
}
