/**
 * The engine machine's root disk: an empty ext4 filesystem with the mount points the
 * guest needs. Everything the engine runs comes from the read-only tools image (Bun, the
 * agent, runc, the shim, busybox, tini); the disk holds only state: the agent's records,
 * and the containers' upper dirs. No OCI image is involved, so the engine machine needs
 * nothing pulled before its first boot.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MachineError } from "../core/machine-error.ts";

const DIRS = ["opt/arcbox", "proc", "sys", "dev", "run", "tmp", "etc", "root", "var/lib/arcbox", "bin"];

export async function buildEngineDisk(diskPath: string, sizeGib: number): Promise<void> {
  const stage = mkdtempSync(join(tmpdir(), "arcbox-engine-root-"));
  try {
    for (const d of DIRS) mkdirSync(join(stage, d), { recursive: true, mode: 0o755 });
    // Scripts that say #!/bin/sh (and runc's hooks) find busybox.
    symlinkSync("/opt/arcbox/bin/busybox", join(stage, "bin", "sh"));
    const proc = Bun.spawn(["mkfs.ext4", "-q", "-F", "-L", "arcbox-engine", "-E", "root_owner=0:0", "-d", stage, diskPath, `${sizeGib}G`], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) {
      rmSync(diskPath, { force: true });
      throw new MachineError("internal", `cannot make the engine machine's disk: ${stderr.trim() || `exit code ${code}`}`);
    }
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
