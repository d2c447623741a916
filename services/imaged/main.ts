/**
 * imaged: owns images (content store, snapshots, metadata). Started lazily by the
 * supervisor on first use; exits after a quiet spell (IDLE_EXIT_SECONDS, or
 * ARCBOX_IDLE_EXIT_SECONDS) and is started again on the next call.
 */
import { join } from "node:path";
import { runService } from "../../lib/service/run-service.ts";
import { ImageCore } from "./core/image-core.ts";
import { ImageStore } from "./core/image-store.ts";
import { Puller } from "./core/puller.ts";
import { Pusher } from "./core/pusher.ts";
import { loadRegistryConfig } from "./core/registry-config.ts";
import { LayerConverter } from "./core/layer-convert.ts";
import { LayerMounts } from "./core/layer-mounts.ts";
import { RootfsManager } from "./core/rootfs.ts";
import { imageServiceRoutes } from "./server/image-service.ts";
import { serveUploads } from "./server/upload-server.ts";
import { ContentStore } from "./storage/content-store.ts";
import { ImageDb } from "./storage/image-db.ts";
import { Snapshots } from "./storage/snapshots.ts";

/**
 * imaged keeps nothing in memory between calls (images, layers, mounts and snapshot
 * references are on disk and adopted at start), and running containers do not need it:
 * it goes soon after the last call. 20 s keeps it up through a session of commands;
 * staying would cost ~12-17 MB PSS at rest, going costs the next image call imaged's
 * start (spawn to ready 0.2-0.3 s on a loaded 2-core host).
 */
const IDLE_EXIT_SECONDS = 20;

// No top-level await: the bundle is compiled to bytecode (scripts/build.sh), which needs
// a CommonJS-shaped module.
runService({
  name: "imaged",
  async start(ctx) {
    const db = new ImageDb(ctx.dataDir);
    const snapshots = new Snapshots(ctx.dataDir);
    const store = new ImageStore(db, new ContentStore(ctx.dataDir), snapshots);
    const registryConfig = loadRegistryConfig(ctx.home.root);
    const mounts = new LayerMounts(snapshots);
    const converter = new LayerConverter(store, ctx.log);
    // The host mounts a container's layer images in both modes. In VM mode the engine
    // machine mounts its own and fills named volumes from them, but fsd still fills a
    // volume with options (o=bind: a host directory) on the host through these. Mount on
    // demand for that copy-up to drop this.
    const mountLayers = true;
    const core = new ImageCore(
      store,
      new Puller(store, () => registryConfig),
      new Pusher(store, () => registryConfig),
      new RootfsManager(store, mounts, converter, { mountLayers }),
      () => registryConfig,
    );
    // Layer images still mounted by an earlier run are adopted, not mounted again;
    // those of existing containers are mounted (after a reboot), the rest unmounted.
    const roots = mountLayers ? db.allContainerRoots().map((id) => db.getImage(id)?.diffIds ?? []) : [];
    for (const error of await mounts.adopt(roots)) ctx.log.warn("layer image mount at start failed", { error });
    // Whatever an interrupted run left unreferenced goes now, not on a timer.
    store.collectGarbage();
    // A store from before layer images: its unpacked layers become images, in the background.
    converter.start();
    const uploadSocket = join(ctx.home.run, "imaged-upload.sock");
    const uploads = serveUploads(uploadSocket, core, ctx.log);
    return {
      routes: imageServiceRoutes(core, uploadSocket, () => registryConfig),
      state: () => ({
        images: db.allImages().length,
        layers: db.allLayers().length,
        layerMounts: mounts.stats(),
        layerConversion: { pending: converter.busy, converted: converter.converted, failed: converter.failed },
        registries: registryConfig,
      }),
      // Nothing is kept in memory between calls: with no upload under way it can go.
      idle: () => !uploads.busy && !converter.busy,
      idleExitSeconds: IDLE_EXIT_SECONDS,
      stop: async () => {
        await uploads.stop();
        await converter.drain();
        await snapshots.drain();
        db.close();
      },
    };
  },
}).catch((err) => {
  console.error("imaged failed to start:", err);
  process.exit(1);
});
