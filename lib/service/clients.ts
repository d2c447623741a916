/**
 * Typed Connect clients for every ArcBox service, as seen from any process.
 * Calls to a lazy service that is not running ask the supervisor to start it first.
 *
 * Each service's descriptors load on the first use of its client (a synchronous
 * `require`): building a file's descriptors at start-up costs heap for as long as the
 * process lives (containers_pb alone ~1.2 MB; the first file a process builds also
 * boots protobuf's own descriptor.proto, ~3.5 MB more), and most processes call one or
 * two of these services, never all of them. The supervisor's and Health's too, and
 * Connect's client code itself (its JSON codec builds google.protobuf.Any's and Struct's
 * descriptors as it loads): an apid asked nothing that needs another service builds none.
 */
import type { Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import type * as SupervisorPb from "../../proto/gen/arcbox/supervisor/v1/supervisor_pb.ts";
import type * as HealthPb from "../../proto/gen/arcbox/common/v1/health_pb.ts";
import type * as ContainersPb from "../../proto/gen/arcbox/containers/v1/containers_pb.ts";
import type * as ImagesPb from "../../proto/gen/arcbox/images/v1/images_pb.ts";
import type * as MachineNetPb from "../../proto/gen/arcbox/networks/v1/machine_net_pb.ts";
import type * as MachinesPb from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type * as ManagerPb from "../../proto/gen/arcbox/machines/v1/manager_pb.ts";
import type * as NetworksPb from "../../proto/gen/arcbox/networks/v1/networks_pb.ts";
import type * as SharesPb from "../../proto/gen/arcbox/volumes/v1/shares_pb.ts";
import type * as VolumesPb from "../../proto/gen/arcbox/volumes/v1/volumes_pb.ts";
import { serviceSocket, supervisorSocket, type ArcboxHome } from "../home.ts";
import type * as RpcClient from "../rpc/client.ts";
import { activateViaSupervisor, underSupervisor } from "./supervisor-channel.ts";

export function supervisorClient(home: ArcboxHome): Client<typeof SupervisorPb.SupervisorService> {
  const { SupervisorService } = require("../../proto/gen/arcbox/supervisor/v1/supervisor_pb.ts") as typeof SupervisorPb;
  return rpcClient().unixClient(SupervisorService, supervisorSocket(home));
}

export class ServiceClients {
  private cache = new Map<string, unknown>();
  private supervisor: Client<typeof SupervisorPb.SupervisorService> | undefined;

  constructor(private readonly home: ArcboxHome) {}

  /** A supervised service asks over its channel; any other process (the CLI) over the socket. */
  private async activate(service: string): Promise<void> {
    if (underSupervisor) return activateViaSupervisor(service);
    this.supervisor ??= supervisorClient(this.home);
    await this.supervisor.activate({ name: service });
  }

  get images() {
    return this.client("imaged", () => (require("../../proto/gen/arcbox/images/v1/images_pb.ts") as typeof ImagesPb).ImageService);
  }
  get networks() {
    return this.client("netd", () => (require("../../proto/gen/arcbox/networks/v1/networks_pb.ts") as typeof NetworksPb).NetworkService);
  }
  /** netd's machine networking (TAP, lease, DHCP, DNS) for vmm. */
  get machineNetworks() {
    return this.client("netd", () => (require("../../proto/gen/arcbox/networks/v1/machine_net_pb.ts") as typeof MachineNetPb).MachineNetworkService, "netd:machines");
  }
  get volumes() {
    return this.client("fsd", () => (require("../../proto/gen/arcbox/volumes/v1/volumes_pb.ts") as typeof VolumesPb).VolumeService);
  }
  /** fsd's VirtioFS shares for machines (vmm starts one per machine share before qemu). */
  get shares() {
    return this.client("fsd", () => (require("../../proto/gen/arcbox/volumes/v1/shares_pb.ts") as typeof SharesPb).ShareService, "fsd:shares");
  }
  get machines() {
    return this.client("vmm", () => (require("../../proto/gen/arcbox/machines/v1/machines_pb.ts") as typeof MachinesPb).MachineService);
  }
  get machineManager() {
    return this.client("vmm", () => (require("../../proto/gen/arcbox/machines/v1/manager_pb.ts") as typeof ManagerPb).MachineManagerService, "vmm:manager");
  }
  get containers() {
    return this.client("apid", () => (require("../../proto/gen/arcbox/containers/v1/containers_pb.ts") as typeof ContainersPb).ContainerService);
  }
  health(service: string) {
    return this.client(service, () => (require("../../proto/gen/arcbox/common/v1/health_pb.ts") as typeof HealthPb).HealthService, `${service}:health`);
  }

  private client<T extends DescService>(service: string, desc: () => T, cacheKey = service): Client<T> {
    let c = this.cache.get(cacheKey) as Client<T> | undefined;
    if (!c) {
      c = rpcClient().unixClient(desc(), serviceSocket(this.home, service), () => this.activate(service));
      this.cache.set(cacheKey, c);
    }
    return c;
  }
}

/** Connect's client code, loaded with the first client (see the note at the top). */
function rpcClient(): typeof RpcClient {
  return require("../rpc/client.ts") as typeof RpcClient;
}
