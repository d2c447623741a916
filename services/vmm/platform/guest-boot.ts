/**
 * Where the guest's kernel, initramfs and tools image are, and a machine's kernel
 * command line: a thin seam over guest/boot/contract.ts (owned by the guest side).
 */
import { REPO_ROOT } from "../../../lib/entry.ts";
import { ArcboxError } from "../../../lib/errors.ts";
import { guestArtifacts, kernelCmdline } from "../../../guest/boot/contract.ts";
import type { GuestMount } from "../../../guest/boot/mounts-arg.ts";

export interface GuestBoot {
  kernel: string;
  initrd: string;
  tools: string;
  /** `mounts`: the shares the guest mounts during boot (in this order). */
  cmdline(machineName: string, mounts?: readonly GuestMount[]): string;
}

export function guestBoot(repoRoot = REPO_ROOT): GuestBoot {
  const a = guestArtifacts(repoRoot);
  return { ...a, cmdline: (machineName, mounts = []) => checkedLength(kernelCmdline({ machineName, mounts: [...mounts] })) };
}

/** x86's COMMAND_LINE_SIZE: a longer line is cut short by the kernel, silently. */
const MAX_CMDLINE = 2047;

function checkedLength(cmdline: string): string {
  if (Buffer.byteLength(cmdline) > MAX_CMDLINE)
    throw new ArcboxError(
      "invalid_argument",
      `the machine's mounts do not fit on the kernel command line (${Buffer.byteLength(cmdline)} of ${MAX_CMDLINE} bytes): use fewer or shorter guest directories`,
    );
  return cmdline;
}
