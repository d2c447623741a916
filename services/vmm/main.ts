/**
 * vmm: owns machines. Started lazily by the supervisor on first use.
 */
import { MachineService } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { runService } from "../../lib/service/run-service.ts";

await runService({
  name: "vmm",
  async start() {
    return {
      routes: (router) => router.service(MachineService, { list: () => ({ items: [] }) }),
      state: () => ({ machines: [] }),
    };
  },
});
