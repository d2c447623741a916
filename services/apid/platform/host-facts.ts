/** Facts about the host for /version and /info, read once from the OS. */
import { existsSync, readFileSync, statfsSync } from "node:fs";
import { arch, availableParallelism, hostname, release, totalmem, type as osType } from "node:os";

export interface HostFacts {
  kernelVersion: string;
  operatingSystem: string;
  osVersion: string;
  osType: string;
  architecture: string;
  goArch: string;
  ncpu: number;
  memTotal: number;
  hostname: string;
  cgroupVersion: "1" | "2";
}

function osRelease(): Record<string, string> {
  try {
    const out: Record<string, string> = {};
    for (const line of readFileSync("/etc/os-release", "utf8").split("\n")) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
    }
    return out;
  } catch {
    return {};
  }
}

const unameArch: Record<string, string> = { x64: "x86_64", arm64: "aarch64", arm: "armv7l", ia32: "i686" };
const goArchOf: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386" };

let cached: HostFacts | undefined;
export function hostFacts(): HostFacts {
  if (cached) return cached;
  const rel = osRelease();
  cached = {
    kernelVersion: release(),
    operatingSystem: rel.PRETTY_NAME ?? osType(),
    osVersion: rel.VERSION_ID ?? "",
    osType: "linux",
    architecture: unameArch[arch()] ?? arch(),
    goArch: goArchOf[arch()] ?? arch(),
    ncpu: availableParallelism(),
    memTotal: totalmem(),
    hostname: hostname(),
    // A unified hierarchy has cgroup.controllers at its root; hybrid/v1 hosts do not.
    cgroupVersion: existsSync("/sys/fs/cgroup/cgroup.controllers") ? "2" : "1",
  };
  return cached;
}

/** The filesystem type backing a directory, as Docker shows it ("extfs", "xfs", ...). */
export function backingFilesystem(dir: string): string {
  const magic: Record<number, string> = { 61267: "extfs", 1481003842: "xfs", 2435016766: "btrfs", 16914836: "tmpfs", 2035054128: "overlayfs", 801189825: "zfs" };
  try {
    const t = statfsSync(dir).type;
    return magic[t] ?? `0x${t.toString(16)}`;
  } catch {
    return "unknown";
  }
}
