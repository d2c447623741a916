/**
 * fsd: owns volumes (local driver: directories, option mounts, first-use copy of image
 * content). Started lazily by the supervisor on first use; exits when idle. (FUSE/VirtioFS file sharing
 * for VMs will live here too.)
 */
import { runService } from "../../lib/service/run-service.ts";
import { Volumes } from "./core/volumes.ts";
import { volumeRoutes } from "./server/volume-service.ts";
import { VolumeStore } from "./storage/volume-store.ts";

await runService({
  name: "fsd",
  async start(ctx) {
    const store = new VolumeStore(ctx.dataDir);
    const volumes = new Volumes(store, ctx.dataDir, ctx.log);
    return {
      routes: volumeRoutes(volumes),
      state: () => ({ volumes: store.all().map((v) => v.name) }),
      // Volumes in use keep fsd up (their option mounts are its to undo); otherwise all
      // state is in SQLite and it can exit until the next call.
      idle: () => !store.hasRefs(),
      stop: async () => store.close(),
    };
  },
});
