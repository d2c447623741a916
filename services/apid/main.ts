/**
 * apid: the public face of ArcBox. Serves the Docker Engine API on run/docker.sock and
 * ArcBox's ContainerService on run/apid.sock; owns container records.
 *
 * It starts in two stages, for cold start. This first stage loads only node:http and a
 * few small modules, opens the Docker socket, answers /_ping and /version by itself and
 * tells the supervisor it is ready: that is all `docker version` needs. The second stage
 * (service.ts: hono routes, zod, Connect, protobuf, the records) is loaded on the first
 * request that needs it, right after the first /version answer, or STAGE2_DELAY_MS after
 * start, whichever comes first. Loading it blocks the event loop for a while, so it is
 * kept off the path of the first `docker version` rather than started at once.
 */
import { arcboxHome, dockerSocket, ensureHome } from "../../lib/home.ts";
import { createLogger } from "../../lib/log.ts";
import { parseHomeFlag } from "../../lib/service/argv.ts";
import { onSupervisorExit, sendToSupervisor } from "../../lib/service/supervisor-channel.ts";
import type { DockerApp } from "./docker/app.ts";
import type { HijackRouter } from "./docker/hijack.ts";
import { serveDocker, type DockerServer } from "./docker/server.ts";
import { systemFastPath } from "./docker/system-info.ts";

/** Without a request, the second stage (and container recovery) starts this soon. */
const STAGE2_DELAY_MS = 300;

interface FullApp {
  app: DockerApp;
  hijack: HijackRouter;
}

const home = arcboxHome(parseHomeFlag(process.argv.slice(2)));
ensureHome(home);
const log = createLogger("apid");

let full: FullApp | undefined;
let attachFull!: (f: FullApp) => void;
const fullReady = new Promise<FullApp>((resolve) => (attachFull = resolve));
let stage2Started = false;
let handedOver = false; // the second stage's runService owns signals and stop from then on
let stage2Timer: ReturnType<typeof setTimeout> | undefined;

function startStage2(): void {
  if (stage2Started) return;
  stage2Started = true;
  clearTimeout(stage2Timer);
  import("./service.ts")
    .then(({ runApid }) =>
      runApid({
        home,
        // Set: the second stage starts from a request on it, or a timer armed once it is open.
        server: server!,
        attach: (app, hijack) => attachFull((full = { app, hijack })),
      }),
    )
    .then(() => (handedOver = true))
    .catch((err) => {
      log.error("apid failed to start", { error: err });
      process.exit(1);
    });
}

// No top-level await in an entry point: the bundle is compiled to bytecode
// (scripts/build.sh), which needs a CommonJS-shaped module.
let server: DockerServer | undefined;

// Until the second stage has installed its own handlers, stopping is closing the socket.
const stopEarly = () => {
  if (handedOver) return;
  if (!server) process.exit(0);
  void server.stop().finally(() => process.exit(0));
};
process.on("SIGTERM", stopEarly);
process.on("SIGINT", stopEarly);

serveDocker(
  dockerSocket(home),
  {
    async fetch(req, env) {
      if (!full) {
        const path = new URL(req.url).pathname;
        const fast = systemFastPath(req.method, path);
        if (fast) {
          // `docker version` is done after /version: load the rest once it is answered.
          if (path === "/version") setTimeout(startStage2, 1);
          return fast;
        }
        startStage2();
        await fullReady;
      }
      return full!.app.fetch(req, env);
    },
  },
  async () => {
    startStage2();
    return (await fullReady).hijack;
  },
  log,
)
  .then((opened) => {
    server = opened;
    if (!stage2Started) stage2Timer = setTimeout(startStage2, STAGE2_DELAY_MS);
    onSupervisorExit(stopEarly);
    sendToSupervisor({ type: "ready" });
  })
  .catch((err) => {
    log.error("cannot open the Docker socket", { error: err });
    process.exit(1);
  });
