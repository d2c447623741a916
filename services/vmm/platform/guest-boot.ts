/**
 * Where the guest's kernel, initramfs and tools image are, and a machine's kernel
 * command line: a thin seam over guest/boot/contract.ts (owned by the guest side).
 */
import { REPO_ROOT } from "../../../lib/entry.ts";
import { guestArtifacts, kernelCmdline } from "../../../guest/boot/contract.ts";

export interface GuestBoot {
  kernel: string;
  initrd: string;
  tools: string;
  cmdline(machineName: string): string;
}

export function guestBoot(repoRoot = REPO_ROOT): GuestBoot {
  const a = guestArtifacts(repoRoot);
  return { ...a, cmdline: (machineName) => kernelCmdline({ machineName }) };
}
