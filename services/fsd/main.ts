/**
 * fsd: owns volumes (local driver: directories, option mounts, first-use copy of image
 * content) and VirtioFS file sharing for machines (one supervised arcbox-virtiofsd per
 * share). Started lazily by the supervisor on first use; exits when idle.
 */
import { runService } from "../../lib/service/run-service.ts";
import { Shares, type ShareView } from "./core/shares.ts";
import { Volumes } from "./core/volumes.ts";
import { engineMode } from "../../lib/engine-mode.ts";
import { MachineVolumeData } from "./platform/machine-volume-data.ts";
import { shareRoutes } from "./server/share-service.ts";
import { volumeRoutes } from "./server/volume-service.ts";
import { ShareStore } from "./storage/share-store.ts";
import { VolumeStore } from "./storage/volume-store.ts";

await runService({
  name: "fsd",
  async start(ctx) {
    const store = new VolumeStore(ctx.dataDir);
    // VM mode: named volumes' data is on the engine machine's disk (its agent, via vmm).
    const volumes = new Volumes(store, ctx.dataDir, engineMode() === "vm" ? new MachineVolumeData(() => ctx.clients.machines) : undefined);
    const shares = new Shares(ctx.home, new ShareStore(ctx.dataDir), ctx.log);
    await shares.adopt();
    const perShare = (pick: (v: ShareView) => bigint | boolean | number | undefined) => () => shares.list().map((v) => ({ labels: { machine: v.machine, tag: v.tag }, value: Number(pick(v) ?? 0) }));
    ctx.metrics.gauges(
      "share_up",
      "Whether the share's server is running (1) or not (0).",
      perShare((v) => v.state === "running"),
    );
    ctx.metrics.gauges(
      "share_connected",
      "Whether a machine (qemu) is connected to the share.",
      perShare((v) => v.stats?.connected),
    );
    ctx.metrics.gauges(
      "share_requests_total",
      "FUSE requests the share's server answered.",
      perShare((v) => v.stats?.requests),
    );
    ctx.metrics.gauges(
      "share_errors_total",
      "FUSE requests answered with an error.",
      perShare((v) => v.stats?.errors),
    );
    ctx.metrics.gauges(
      "share_read_bytes_total",
      "File bytes read through the share.",
      perShare((v) => v.stats?.bytesRead),
    );
    ctx.metrics.gauges(
      "share_written_bytes_total",
      "File bytes written through the share.",
      perShare((v) => v.stats?.bytesWritten),
    );
    ctx.metrics.gauges(
      "share_batches_total",
      "Virtqueue batches processed (one guest notification at most each).",
      perShare((v) => v.stats?.batches),
    );
    ctx.metrics.gauges(
      "share_inodes",
      "Inodes the guest holds references to.",
      perShare((v) => v.stats?.inodes),
    );
    ctx.metrics.gauges(
      "share_inode_fds",
      "Inodes whose host descriptor is open (the rest were evicted under the fd limit).",
      perShare((v) => v.stats?.inodeFds),
    );
    ctx.metrics.gauges(
      "share_inode_evictions_total",
      "Times a cold inode's host descriptor was closed to stay under the fd limit.",
      perShare((v) => v.stats?.evictions),
    );
    ctx.metrics.gauges(
      "share_open_handles",
      "Files and directories the guest has open.",
      perShare((v) => v.stats?.openHandles),
    );
    ctx.metrics.gauges(
      "share_restarts_total",
      "Times fsd restarted the share's server after it died.",
      perShare((v) => v.restarts),
    );
    return {
      routes: (router) => {
        volumeRoutes(volumes)(router);
        shareRoutes(shares)(router);
      },
      state: () => ({
        volumes: store.all().map((v) => v.name),
        shares: shares.list().map((v) => ({ ...v, stats: v.stats && Object.fromEntries(Object.entries(v.stats).map(([k, x]) => [k, typeof x === "bigint" ? Number(x) : x])) })),
      }),
      // Volumes in use keep fsd up (their option mounts are its to undo), and so do shares
      // (their servers are its to supervise); otherwise all state is on disk.
      idle: () => !store.hasRefs() && shares.size === 0,
      stop: async () => {
        shares.detach();
        store.close();
      },
    };
  },
});
