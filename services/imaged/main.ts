/**
 * imaged: owns images. Started lazily by the supervisor on first use.
 */
import { ImageService } from "../../proto/gen/arcbox/images/v1/images_pb.ts";
import { runService } from "../../lib/service/run-service.ts";

await runService({
  name: "imaged",
  async start() {
    return {
      routes: (router) => router.service(ImageService, { list: () => ({ items: [] }) }),
      state: () => ({ images: [] }),
    };
  },
});
