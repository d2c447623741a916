/**
 * The machine's network, as vmm needs it from netd: a TAP device and a MAC before qemu
 * starts (idempotent: same MAC and IP for the same machine), the address for inspect,
 * and cleanup on removal. `noNetwork` is the stand-in where netd cannot provide one.
 */
export interface MachineNic {
  tap: string;
  mac: string;
  ip: string;
}

export interface MachineNetwork {
  attach(machine: string): Promise<MachineNic | undefined>;
  detach(machine: string): Promise<void>;
}

export const noNetwork: MachineNetwork = {
  attach: async () => undefined,
  detach: async () => {},
};
