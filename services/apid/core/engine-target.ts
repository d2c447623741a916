/**
 * Which machine runs this daemon's containers, and what that changes in apid: the one
 * place apid looks at the engine mode (lib/engine-mode.ts). Host mode: the guest agent
 * on this host ("host"). VM mode: the engine machine; vmm translates paths and sockets,
 * so apid's requests stay the same apart from the machine name and the network.
 */
import { engineMachine, engineMode } from "../../../lib/engine-mode.ts";
import { ContainerError } from "./container-error.ts";

export const ENGINE_IS_VM = engineMode() === "vm";

/** The `machine` of every MachineService call apid makes. */
export const ENGINE_MACHINE_NAME = engineMachine();

/**
 * Whether a container's network is netd's (attach and detach). In VM mode too: netd
 * keeps IPAM, names and rules, and runs the kernel side in the engine machine.
 */
export function usesNetd(mode: string): boolean {
  return mode !== "none" && mode !== "host" && !mode.startsWith("container:");
}

/**
 * Operations that read or write a container's root filesystem from the host (docker cp,
 * export, diff, commit). In VM mode the container's upper dir is on the engine machine's
 * disk: the host's copy is empty, so doing them here would answer wrongly. Refused
 * until they run in the machine.
 */
export function assertHostRootfs(what: string): void {
  if (ENGINE_IS_VM) throw new ContainerError("not_implemented", `${what} is not available in VM mode yet (the container's files are in the engine machine)`);
}
