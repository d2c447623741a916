/** The host's own resolver configuration and hostname, read when a container needs them. */
import { mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";

/** The host's resolver config; ARCBOX_RESOLV_CONF names another file (tests, unusual hosts). */
export function hostResolvConf(): string {
  try {
    return readFileSync(process.env.ARCBOX_RESOLV_CONF || "/etc/resolv.conf", "utf8");
  } catch {
    return "";
  }
}

export function hostHostsFile(): string {
  try {
    return readFileSync("/etc/hosts", "utf8");
  } catch {
    return "127.0.0.1\tlocalhost\n";
  }
}

export const hostHostname = () => hostname();

/** Writes a file atomically (rename), so a container never sees it half-written. */
export function writeAtomic(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode: 0o644 });
  renameSync(tmp, path);
}

export function containerFilesDir(dataDir: string, containerId: string): string {
  const dir = join(dataDir, "containers", containerId);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return dir;
}

export function removeContainerFiles(dataDir: string, containerId: string): void {
  rmSync(join(dataDir, "containers", containerId), { recursive: true, force: true });
}
