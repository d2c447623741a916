/**
 * `arcbox start`. Kept apart from the other commands so that starting loads no RPC
 * code: the CLI's own start-up is part of ArcBox's cold start.
 */
import { spawn } from "node:child_process";
import { closeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { REPO_ROOT, resolveEntry } from "../../lib/entry.ts";
import { dockerSocket, ensureHome, serviceLog, type ArcboxHome } from "../../lib/home.ts";
import { openLogFile } from "../../lib/log.ts";

const START_TIMEOUT_MS = 60_000;

export async function dockerPing(home: ArcboxHome): Promise<boolean> {
  try {
    const res = await fetch("http://docker/_ping", { unix: dockerSocket(home) } as RequestInit);
    return res.ok && (await res.text()) === "OK";
  } catch {
    return false;
  }
}

/**
 * Spawns the supervisor detached, with a pipe on fd 3 that it writes "ready" to once
 * the Docker socket is served: no polling, and an early exit is seen at once.
 */
export async function start(home: ArcboxHome, opts: { vm?: boolean } = {}): Promise<number> {
  ensureHome(home);
  if (await dockerPing(home)) {
    console.log(`ArcBox is already running (home ${home.root})`);
    return 0;
  }
  const logFd = openLogFile(serviceLog(home, "supervisor"));
  const daemon = resolveEntry("supervisor", join(REPO_ROOT, "services", "supervisor", "daemon.ts"));
  const child = spawn(process.execPath, ["--smol", daemon, "--home", home.root], {
    detached: true,
    stdio: ["ignore", logFd, logFd, "pipe"],
    env: { ...process.env, ARCBOX_HOME: home.root, ARCBOX_READY_FD: "3", ...(opts.vm ? { ARCBOX_ENGINE_MODE: "vm" } : {}) },
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
