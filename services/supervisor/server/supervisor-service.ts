/** Connect handlers of SupervisorService: translation only. */
import type { ConnectRouter } from "@connectrpc/connect";
import { ServiceState, SupervisorService } from "../../../proto/gen/arcbox/supervisor/v1/supervisor_pb.ts";
import { dockerSocket, type ArcboxHome } from "../../../lib/home.ts";
import { ARCBOX_VERSION } from "../../../lib/version.ts";
import type { ServiceSnapshot } from "../core/managed-service.ts";
import type { ServiceStateName } from "../core/service-state.ts";
import type { Supervisor } from "../core/supervisor.ts";

const stateToProto: Record<ServiceStateName, ServiceState> = {
  idle: ServiceState.IDLE,
  starting: ServiceState.STARTING,
  ready: ServiceState.READY,
  backoff: ServiceState.BACKOFF,
  stopping: ServiceState.STOPPING,
  stopped: ServiceState.STOPPED,
};

const toProto = (s: ServiceSnapshot) => ({ ...s, state: stateToProto[s.state], startedAtUnixMs: BigInt(s.startedAtUnixMs) });

export function supervisorRoutes(sup: Supervisor, home: ArcboxHome, onShutdown: () => void) {
  return (router: ConnectRouter) =>
    router.service(SupervisorService, {
      status: () => ({
        pid: process.pid,
        home: home.root,
        version: ARCBOX_VERSION,
        dockerSocket: dockerSocket(home),
        services: sup.services.map((s) => toProto(s.snapshot())),
      }),
      activate: async (req) => ({ service: toProto((await sup.activate(req.name)).snapshot()) }),
      shutdown: () => {
        // Answer first; the supervisor exits once everything has stopped.
        setTimeout(onShutdown, 0);
        return {};
      },
    });
}
