/** `arcbox stop | status`: through the supervisor's Connect API. */
import { existsSync, readFileSync } from "node:fs";
import { supervisorLock, type ArcboxHome } from "../../lib/home.ts";
import { supervisorClient } from "../../lib/service/clients.ts";
import { ServiceState } from "../../proto/gen/arcbox/supervisor/v1/supervisor_pb.ts";

const STOP_TIMEOUT_MS = 30_000;

function daemonPid(home: ArcboxHome): number | undefined {
  try {
    const pid = Number(readFileSync(supervisorLock(home), "utf8").trim());
    if (pid > 0) {
      process.kill(pid, 0);
      return pid;
    }
  } catch {}
  return undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function stop(home: ArcboxHome): Promise<number> {
  const pid = daemonPid(home);
  if (!pid) {
    console.log("ArcBox is not running");
    return 0;
  }
  try {
    await supervisorClient(home).shutdown({});
  } catch {
    process.kill(pid, "SIGTERM"); // control socket gone: fall back to the signal
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      console.log("ArcBox stopped");
      return 0;
    }
    await sleep(20);
  }
  process.stderr.write(`arcbox: daemon (pid ${pid}) did not stop within ${STOP_TIMEOUT_MS / 1000}s\n`);
  return 1;
}

const stateName = (s: ServiceState) => ServiceState[s]?.toLowerCase() ?? "unknown";

export async function status(home: ArcboxHome): Promise<number> {
  if (!existsSync(supervisorLock(home)) || !daemonPid(home)) {
    console.log(`ArcBox is not running (home ${home.root})`);
    return 1;
  }
  const st = await supervisorClient(home).status({});
  console.log(`ArcBox ${st.version}  pid ${st.pid}  home ${st.home}`);
  console.log(`Docker socket: unix://${st.dockerSocket}\n`);
  console.log(`${"SERVICE".padEnd(10)}${"STATE".padEnd(10)}${"PID".padEnd(9)}${"RESTARTS".padEnd(10)}LAST EXIT`);
  for (const s of st.services) {
    const state = s.lazy && s.state === ServiceState.IDLE ? "idle" : stateName(s.state);
    console.log(`${s.name.padEnd(10)}${state.padEnd(10)}${String(s.pid || "-").padEnd(9)}${String(s.restarts).padEnd(10)}${s.lastExit || "-"}`);
  }
  return 0;
}
