/** Connect handlers of fsd: translation between protobuf messages and the core. */
import type { ConnectRouter } from "@connectrpc/connect";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { VolumeService, type VolumeSchema } from "../../../proto/gen/arcbox/volumes/v1/volumes_pb.ts";
import type { VolumeView, Volumes } from "../core/volumes.ts";

export function volumeRoutes(v: Volumes) {
  return (router: ConnectRouter) =>
    router.service(VolumeService, {
      list: async (req) => {
        const volumes = (await v.list(req.withSize)).map(volumeMsg);
        return { items: volumes.map((x) => ({ id: x.name, name: x.name })), volumes };
      },
      create: async (req) => ({ volume: volumeMsg(await v.create(req.name, req.driver, req.driverOpts, req.labels)) }),
      inspect: (req) => ({ volume: volumeMsg(v.inspect(req.name)) }),
      remove: async (req) => {
        await v.remove(req.name, req.force);
        return {};
      },
      prune: async (req) => {
        const r = await v.prune(req.labels, req.notLabels, req.all);
        return { deleted: r.deleted, spaceReclaimed: BigInt(r.reclaimed) };
      },
      mount: (req) =>
        v.mount({
          containerId: req.containerId,
          name: req.name,
          target: req.target,
          imageLowerDirs: req.imageLowerDirs,
          noCopy: req.noCopy,
          driver: req.driver,
          driverOpts: req.driverOpts,
          labels: req.labels,
        }),
      unmount: async (req) => {
        await v.unmount(req.containerId, req.removeAnonymous);
        return {};
      },
    });
}

function volumeMsg(x: VolumeView): MessageInitShape<typeof VolumeSchema> {
  return {
    name: x.name,
    driver: x.driver,
    mountpoint: x.mountpoint,
    createdAt: x.createdAt,
    labels: x.labels,
    options: x.options,
    scope: "local",
    anonymous: x.anonymous,
    inUseBy: x.inUseBy,
    sizeBytes: BigInt(x.sizeBytes),
  };
}
