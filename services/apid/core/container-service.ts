/** ArcBox's own ContainerService (Connect, run/apid.sock): records for other services. */
import type { ContainerRecord } from "./container-record.ts";
import type { ContainerLookup, ExecBackend } from "./container-backends.ts";
import { inspectView } from "./container-view.ts";

function summary(rec: ContainerRecord) {
  return {
    id: rec.id,
    name: rec.name.slice(1),
    image: rec.imageRef,
    imageId: rec.imageId,
    state: rec.state.status,
    createdUnix: BigInt(Math.floor(Date.parse(rec.created) / 1000)),
    labels: rec.config.Labels ?? {},
    exitCode: rec.state.exitCode,
  };
}

export function containerServiceImpl(containers: ContainerLookup, execs: Pick<ExecBackend, "idsOf">) {
  return {
    list: (req: { runningOnly: boolean }) => ({
      items: containers
        .list()
        .filter((r) => !req.runningOnly || ["running", "paused", "restarting"].includes(r.state.status))
        .sort((a, b) => (a.created < b.created ? 1 : -1))
        .map(summary),
    }),
    inspect: (req: { reference: string }) => {
      const rec = containers.get(req.reference);
      return { container: summary(rec), inspectJson: JSON.stringify(inspectView(rec, execs.idsOf(rec.id))) };
    },
  };
}
