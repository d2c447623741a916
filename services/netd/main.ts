/**
 * netd: owns networks. Started lazily by the supervisor on first use.
 */
import { NetworkService } from "../../proto/gen/arcbox/networks/v1/networks_pb.ts";
import { runService } from "../../lib/service/run-service.ts";

await runService({
  name: "netd",
  async start() {
    return {
      routes: (router) => router.service(NetworkService, { list: () => ({ items: [] }) }),
      state: () => ({ networks: [] }),
    };
  },
});
