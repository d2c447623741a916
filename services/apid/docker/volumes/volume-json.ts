/** fsd's Volume message as Docker's `Volume` JSON (field names from the Engine API spec). */
import type { Volume } from "../../../../proto/gen/arcbox/volumes/v1/volumes_pb.ts";

export function volumeJson(v: Volume, withUsage = false) {
  return {
    CreatedAt: v.createdAt,
    Driver: v.driver,
    Labels: v.labels,
    Mountpoint: v.mountpoint,
    Name: v.name,
    Options: Object.keys(v.options).length ? v.options : null,
    Scope: v.scope || "local",
    ...(withUsage ? { UsageData: { Size: Number(v.sizeBytes), RefCount: v.inUseBy.length } } : {}),
  };
}
