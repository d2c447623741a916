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

/** A host port forwarded to the same port of the machine. */
export interface ForwardedPort {
  protocol: string;
  port: number;
  /** The host address it is forwarded on; "" = every host address. */
  hostIp: string;
}

export interface MachineNetwork {
  attach(machine: string): Promise<MachineNic | undefined>;
  detach(machine: string): Promise<void>;
  /** Replaces the machine's forwarded ports; `failed` says which could not be (e.g. taken). */
  setPorts(machine: string, ports: ForwardedPort[]): Promise<{ ports: ForwardedPort[]; failed: string[] }>;
}

export const noNetwork: MachineNetwork = {
  attach: async () => undefined,
  detach: async () => {},
  setPorts: async () => ({ ports: [], failed: [] }),
};
