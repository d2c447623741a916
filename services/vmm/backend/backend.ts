/**
 * What vmm needs from a VM backend. qemu (KVM, HVF or TCG) fills it today; a
 * Virtualization.framework backend can take its place on macOS without the machine
 * manager changing: it only starts, adopts, powers off and kills VMs through this.
 */

/** Everything a backend needs to boot one machine. Paths are absolute. */
export interface VmSpec {
  name: string;
  /** The machine's directory: sockets, pidfile and logs live here. */
  dir: string;
  cpus: number;
  memoryMib: number;
  /** Raw ext4 image, the guest's /dev/vda (read-write). */
  rootDisk: string;
  /** Read-only squashfs of guest tools, the guest's /dev/vdb. */
  toolsDisk: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  /** A TAP device and the MAC the guest's NIC gets; absent: no NIC. */
  net?: { tap: string; mac: string };
  /**
   * vhost-user-fs shares, each a running backend's socket and the tag the guest mounts
   * (guest RAM is then shared memory the backends map).
   */
  shares?: { tag: string; socket: string }[];
}

export type Accelerator = "kvm" | "hvf" | "tcg";

export interface AcceleratorChoice {
  accel: Accelerator;
  /** Why a hardware accelerator is not used ("" when one is). */
  note: string;
}

/** How a VM ended. */
export type VmExitKind = "poweroff" | "killed" | "crashed";
export interface VmExit {
  kind: VmExitKind;
  /** For "crashed": what is known (exit code or signal, stderr tail, guest reset). */
  detail: string;
}

/** A running VM. */
export interface VmHandle {
  readonly pid: number;
  readonly accel: AcceleratorChoice;
  /** Resolves once the VM process is gone, with why. Never rejects. */
  readonly exited: Promise<VmExit>;
  /** The Unix socket whose stream reaches the guest agent's port. */
  readonly agentSocket: string;
  /** Asks the guest to power off the way the platform does (ACPI power button). */
  powerdown(): Promise<void>;
  /** Ends the VM now; its exit is reported as "killed". */
  kill(): Promise<void>;
  /** The VM's run state as the hypervisor sees it ("running", "paused", ...). */
  status(): Promise<string>;
  /** Lets go of the VM without stopping it (vmm is exiting; a later vmm adopts it). */
  release(): void;
}

export interface VmBackend {
  readonly name: string;
  /**
   * What every start needs that no machine's set-up changes (qemu: the accelerator,
   * probed once). `start` waits for it anyway: calling it first lets it run while the
   * caller prepares the machine (network, shares).
   */
  prepare?(): Promise<unknown>;
  /** Boots a VM for `spec`. Resolves once the hypervisor runs it (not once the guest booted). */
  start(spec: VmSpec): Promise<VmHandle>;
  /** Finds a VM still running from an earlier vmm, by the files in `dir`; undefined if none. */
  adopt(name: string, dir: string): Promise<VmHandle | undefined>;
}
