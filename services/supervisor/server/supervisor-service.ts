/** Connect handlers of SupervisorService: translation only. */
import type { ConnectRouter } from "@connectrpc/connect";
import { SupervisorService } from "../../../proto/gen/arcbox/supervisor/v1/supervisor_pb.ts";
import { dockerSocket, type ArcboxHome } from "../../../lib/home.ts";
import { ARCBOX_VERSION } from "../../../lib/version.ts";
import type { Supervisor } from "../core/supervisor.ts";

export function supervisorRoutes(sup: Supervisor, home: ArcboxHome, onShutdown: () => void) {
  return (router: ConnectRouter) =>
    router.service(SupervisorService, {
      status: () => ({
        pid: process.pid,
        home: home.root,
        version: ARCBOX_VERSION,
        dockerSocket: dockerSocket(home),
        services: sup.services.map((s) => s.snapshot()),
      }),
      activate: async (req) => ({ service: (await sup.activate(req.name)).snapshot() }),
      shutdown: () => {
        // Answer first; the supervisor exits once everything has stopped.
        setTimeout(onShutdown, 0);
        return {};
      },
    });
}
