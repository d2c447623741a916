/** Connect handlers of netd's MachineNetworkService: translation between protobuf and the core only. */
import type { ConnectRouter } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { MachineNetworkService, type MachineLeaseSchema, type MachinePortSchema } from "../../../proto/gen/arcbox/networks/v1/machine_net_pb.ts";
import { MACHINE_DOMAIN } from "../core/machines.ts";
import type { MachineLeaseRecord, MachinePortRecord } from "../core/model.ts";
import type { NetDaemon } from "../core/net-daemon.ts";
import { parseCidr } from "../core/ipv4.ts";

export function machineNetworkRoutes(d: NetDaemon) {
  return (router: ConnectRouter) =>
    router.service(MachineNetworkService, {
      attachMachine: async (req) => {
        const { lease, net, prefixLen } = await d.attachMachine(req.machine);
        return { tap: lease.tap, mac: lease.mac, ip: lease.ip, prefixLen, gateway: net.gateway, dns: net.gateway, hostAliasIp: net.hostAlias, bridge: net.bridge, domain: MACHINE_DOMAIN };
      },
      detachMachine: async (req) => {
        await d.detachMachine(req.machine);
        return {};
      },
      listMachineLeases: () => {
        const net = d.state.machineNet;
        const prefixLen = net ? parseCidr(net.subnet).prefix : 0;
        const leases = [...d.state.machines.values()].sort((a, b) => a.machine.localeCompare(b.machine)).map((m) => leaseMsg(m, prefixLen));
        return { leases, bridge: net?.bridge ?? "", subnet: net?.subnet ?? "", gateway: net?.gateway ?? "", hostAliasIp: net?.hostAlias ?? "" };
      },
      setMachinePorts: async (req) => {
        const wanted = req.ports.map((p) => ({ protocol: p.protocol, port: p.port, hostPort: p.hostPort, hostIp: p.hostIp }));
        const r = await d.setMachinePorts(req.machine, wanted);
        return { ports: r.ports.map(portMsg), failed: r.failed };
      },
    });
}

const portMsg = (p: MachinePortRecord): MessageInitShape<typeof MachinePortSchema> => ({ protocol: p.protocol, port: p.port, hostPort: p.hostPort, hostIp: p.hostIp });

function leaseMsg(m: MachineLeaseRecord, prefixLen: number): MessageInitShape<typeof MachineLeaseSchema> {
  return { machine: m.machine, mac: m.mac, ip: m.ip, prefixLen, tap: m.tap, clientHostname: m.clientHostname, expiresUnix: BigInt(m.expiresUnix), ports: m.ports.map(portMsg) };
}
