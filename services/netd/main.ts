/**
 * netd: owns networks (bridges, IPAM, NAT, published ports, embedded DNS) and each
 * container's network namespace. Started lazily by the supervisor on first use.
 */
import { runService } from "../../lib/service/run-service.ts";
import { NetDaemon } from "./core/net-daemon.ts";
import { netNames } from "./core/names.ts";
import { networkRoutes } from "./server/network-service.ts";
import { NetStore } from "./storage/net-store.ts";

await runService({
  name: "netd",
  async start(ctx) {
    const store = new NetStore(ctx.dataDir);
    const daemon = new NetDaemon(store, netNames(ctx.home.root), ctx.dataDir, ctx.log);
    await daemon.start();
    return {
      routes: networkRoutes(daemon),
      state: () => daemon.debugState(),
      // With no container attached, its state is all in SQLite and rebuilt at start.
      idle: () => daemon.idle,
      stop: async () => {
        await daemon.stop();
        store.close();
      },
    };
  },
});
