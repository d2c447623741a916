/**
 * Which machine runs this daemon's containers, and what that changes in apid: the one
 * place apid looks at the engine mode (lib/engine-mode.ts). Host mode: the guest agent
 * on this host ("host"). VM mode: the engine machine; vmm translates paths and sockets,
 * so apid's requests stay the same apart from the machine name and the network.
 */
import { engineMachine, engineMode } from "../../../lib/engine-mode.ts";

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
