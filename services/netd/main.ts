/**
 * netd: owns networks (bridges, IPAM, NAT, published ports, embedded DNS), each
 * container's network namespace, and machine networking (TAPs, DHCP, DNS, NAT). Started lazily by the supervisor on first use.
 */
import { runService } from "../../lib/service/run-service.ts";
import { NetDaemon } from "./core/net-daemon.ts";
import { netNames } from "./core/names.ts";
import { machineNetworkRoutes } from "./server/machine-network-service.ts";
import { networkRoutes } from "./server/network-service.ts";
import { NetStore } from "./storage/net-store.ts";
import { engineMode } from "../../lib/engine-mode.ts";
import { engineRunner } from "./platform/engine-runner.ts";
import { hostRunner } from "./platform/tool-runner.ts";

await runService({
  name: "netd",
  async start(ctx) {
    const store = new NetStore(ctx.dataDir);
    // VM mode: container bridges and namespaces live in the engine machine; netd still
    // decides (IPAM, names, rules) and its agent runs the commands (engine-runner.ts).
    const runner = engineMode() === "vm" ? engineRunner(() => ctx.clients.machines) : hostRunner;
    const daemon = new NetDaemon(store, netNames(ctx.home.root), ctx.dataDir, ctx.log, runner);
    await daemon.start();
    return {
      routes: (router) => {
        networkRoutes(daemon)(router);
        machineNetworkRoutes(daemon)(router);
      },
      state: () => daemon.debugState(),
      // With no container or machine attached, its state is all in SQLite and rebuilt at start.
      idle: () => daemon.idle,
      stop: async () => {
        await daemon.stop();
        store.close();
      },
    };
  },
});
