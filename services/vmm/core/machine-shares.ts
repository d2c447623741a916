/**
 * A machine's VirtioFS shares, as vmm needs them from fsd: one running vhost-user-fs
 * server per mount before qemu starts (its socket goes on qemu's command line), all of
 * them stopped once qemu has exited.
 */
import type { GuestMount } from "../../../guest/boot/mounts-arg.ts";
import type { MachineMount } from "./machine-mounts.ts";

export interface RunningShare {
  tag: string;
  socket: string;
}

export interface MachineShares {
  /**
   * Starts (or keeps, when already running with the same configuration) a server for
   * each mount and stops the machine's servers that are not among them. vmm's wiring
   * does not ask fsd at all for a machine without mounts (its servers were stopped when
   * its VM exited, or at recovery when it died unseen): fsd stays asleep.
   */
  start(machine: string, mounts: readonly MachineMount[]): Promise<RunningShare[]>;
  /** Stops every server of the machine (idempotent). */
  stop(machine: string): Promise<void>;
  /**
   * Shares the guest mounts during boot beyond the machine's configured mounts (the
   * engine machine's own, served by `start`); none when absent.
   */
  bootMounts?(machine: string): GuestMount[];
}
