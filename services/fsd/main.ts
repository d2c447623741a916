/**
 * fsd: owns volumes. Started lazily by the supervisor on first use.
 */
import { VolumeService } from "../../proto/gen/arcbox/volumes/v1/volumes_pb.ts";
import { runService } from "../../lib/service/run-service.ts";

await runService({
  name: "fsd",
  async start() {
    return {
      routes: (router) => router.service(VolumeService, { list: () => ({ items: [] }) }),
      state: () => ({ volumes: [] }),
    };
  },
});
