/**
 * Where containers run: "host" (the guest agent on this Linux host) or "vm" (every
 * container inside one ArcBox machine, the engine machine: the macOS architecture).
 * Chosen once per daemon start: `arcbox start --vm`, or `"vm": true` in
 * `$ARCBOX_HOME/daemon.json`. The supervisor resolves it and hands it to every service
 * in ARCBOX_ENGINE_MODE, so the services agree and never read daemon.json for it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ArcboxError } from "./errors.ts";

export type EngineMode = "host" | "vm";

/** The engine machine's reserved name (vmm refuses it for `arcbox machine create`). */
export const ENGINE_MACHINE = "arcbox-engine";
/** The agent on the Linux host. */
export const HOST_MACHINE = "host";

export const ENGINE_MODE_ENV = "ARCBOX_ENGINE_MODE";

/**
 * The supervisor's decision: the environment (set by `arcbox start --vm`) wins, then
 * daemon.json's `vm`. A daemon.json that is not JSON, or a `vm` that is not a boolean,
 * is an error: a daemon silently started in the other mode would be worse.
 * zod loads only when there is a daemon.json to check: the supervisor, which alone calls
 * this, keeps no zod in memory otherwise (~1 MB).
 */
export async function resolveEngineMode(homeRoot: string, env: Record<string, string | undefined> = process.env): Promise<EngineMode> {
  const fromEnv = env[ENGINE_MODE_ENV];
  if (fromEnv === "vm" || fromEnv === "host") return fromEnv;
  if (fromEnv) throw new ArcboxError("invalid_argument", `${ENGINE_MODE_ENV} must be "host" or "vm", not ${JSON.stringify(fromEnv)}`);
  let text: string;
  try {
    text = readFileSync(join(homeRoot, "daemon.json"), "utf8");
  } catch {
    return "host";
  }
  const { daemonJsonVm } = await import("./daemon-json-mode.ts");
  try {
    return daemonJsonVm(JSON.parse(text)) ? "vm" : "host";
  } catch (err) {
    throw new ArcboxError("invalid_argument", `daemon.json: "vm" must be true or false (${err instanceof Error ? err.message.split("\n")[0] : err})`);
  }
}

/** A service's view (set by the supervisor). */
export function engineMode(): EngineMode {
  return process.env[ENGINE_MODE_ENV] === "vm" ? "vm" : "host";
}

/** The machine that runs containers in this daemon's mode. */
export function engineMachine(mode: EngineMode = engineMode()): string {
  return mode === "vm" ? ENGINE_MACHINE : HOST_MACHINE;
}
