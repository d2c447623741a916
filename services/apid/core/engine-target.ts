/**
 * Which machine runs this daemon's containers, and what that changes in apid: the one
 * place apid looks at the engine mode (lib/engine-mode.ts). Host mode: the guest agent
 * on this host ("host"). VM mode: the engine machine; vmm translates paths and sockets,
 * so apid's requests stay the same apart from the machine name and the network.
 */
import { engineMachine, engineMode } from "../../../lib/engine-mode.ts";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";

export const ENGINE_IS_VM = engineMode() === "vm";

/** The `machine` of every MachineService call apid makes. */
export const ENGINE_MACHINE_NAME = engineMachine();

/**
 * The network mode a container really gets. In VM mode container networks do not reach
 * the engine machine yet: a container gets its own loopback-only namespace ("none") or
 * the machine's ("host"), and published ports are refused rather than silently dropped.
 */
export function effectiveNetworkMode(rec: ContainerRecord, mode: string): string {
  if (!ENGINE_IS_VM || mode === "none" || mode === "host" || mode.startsWith("container:")) return mode;
  const ports = Object.values((rec.hostConfig.PortBindings ?? {}) as Record<string, unknown[] | null>).some((b) => b?.length) || rec.hostConfig.PublishAllPorts;
  if (ports) throw new ContainerError("invalid_argument", "published ports are not available in VM mode yet (the engine machine has no container networks)");
  return "none";
}

/** Whether a container's network is netd's (attach and detach): never in VM mode yet. */
export function usesNetd(mode: string): boolean {
  return !ENGINE_IS_VM && mode !== "none" && mode !== "host" && !mode.startsWith("container:");
}
