/** `arcbox start | stop | status`. */
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { REPO_ROOT, resolveEntry } from "../../lib/entry.ts";
import type { Readable } from "node:stream";
import { join } from "node:path";
import { dockerSocket, ensureHome, serviceLog, supervisorLock, type ArcboxHome } from "../../lib/home.ts";
import { supervisorClient } from "../../lib/service/clients.ts";
import { ServiceState } from "../../proto/gen/arcbox/supervisor/v1/supervisor_pb.ts";

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;

export async function dockerPing(home: ArcboxHome): Promise<boolean> {
  try {
    const res = await fetch("http://docker/_ping", { unix: dockerSocket(home) } as RequestInit);
    return res.ok && (await res.text()) === "OK";
  } catch {
    return false;
  }
}

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

/**
 * Spawns the supervisor detached, with a pipe on fd 3 that it writes "ready" to once
 * the Docker socket is served: no polling, and an early exit is seen at once.
 */
export async function start(home: ArcboxHome): Promise<number> {
  ensureHome(home);
  if (await dockerPing(home)) {
    console.log(`ArcBox is already running (home ${home.root})`);
    return 0;
  }
  const logFd = openSync(serviceLog(home, "supervisor"), "a");
  const daemon = resolveEntry("supervisor", join(REPO_ROOT, "services", "supervisor", "daemon.ts"));
  const child = spawn(process.execPath, ["--smol", daemon, "--home", home.root], {
    detached: true,
    stdio: ["ignore", logFd, logFd, "pipe"],
    env: { ...process.env, ARCBOX_HOME: home.root, ARCBOX_READY_FD: "3" },
  });
  closeSync(logFd);
  const readyPipe = child.stdio[3] as Readable;
  const outcome = await new Promise<"ready" | "exited" | "timeout">((resolve) => {
    let buf = "";
    const timer = setTimeout(() => resolve("timeout"), START_TIMEOUT_MS);
    readyPipe.on("data", (b: Buffer) => {
      buf += b.toString();
      if (buf.includes("ready")) {
        clearTimeout(timer);
        resolve("ready");
      }
    });
    child.on("exit", () => {
      clearTimeout(timer);
      resolve("exited");
    });
  });
  readyPipe.destroy();
  child.unref();
  if (outcome === "ready") {
    console.log(`ArcBox is running: unix://${dockerSocket(home)}`);
    return 0;
  }
  const tail = readFileSync(serviceLog(home, "supervisor"), "utf8").trimEnd().split("\n").slice(-5).join("\n");
  process.stderr.write(`arcbox: the daemon did not start${outcome === "exited" ? ` (exit code ${child.exitCode ?? "?"})` : " in time"}; last log lines:\n${tail}\n`);
  return 1;
}

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
