/**
 * The container record apid persists: the Docker-shaped Config and HostConfig as
 * created (after defaults and image config were merged), plus runtime state.
 */
import type { ContainerConfig, EndpointSettings, HostConfig } from "./create-config.ts";

export type ContainerStatus = "created" | "running" | "paused" | "restarting" | "removing" | "exited" | "dead";

export interface ContainerState {
  status: ContainerStatus;
  pid: number;
  exitCode: number;
  error: string;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
}

/** Rootfs snapshot from imaged (kept so the runtime can be re-created on restart). */
export interface RootfsInfo {
  lowerDirs: string[];
  upperDir: string;
  workDir: string;
}

export interface NetworkInfo {
  netnsPath: string;
  hostNetwork: boolean;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  endpoints: {
    networkId: string;
    networkName: string;
    endpointId: string;
    ipAddress: string;
    ipPrefixLen: number;
    gateway: string;
    macAddress: string;
    aliases: string[];
    /** On an IPv6 network; absent in records from before IPv6. */
    globalIpv6Address?: string;
    globalIpv6PrefixLen?: number;
    ipv6Gateway?: string;
  }[];
  ports: { protocol: string; containerPort: number; hostIp: string; hostPort: number }[];
  /** Legacy links' ALIAS_* variables, computed at start (default bridge only). */
  linkEnv?: string[];
}

/** A resolved mount as shown by inspect's `Mounts`. */
export interface MountPoint {
  Type: "bind" | "volume" | "tmpfs";
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
  /** tmpfs mount options (not shown by inspect). */
  options?: string[];
  /** VM mode, a type=tmpfs volume: the options the engine machine mounts it with (fsd's answer; not shown by inspect). */
  machineTmpfs?: string;
}

export interface ContainerRecord {
  id: string;
  /** With the leading slash, as Docker stores it. */
  name: string;
  created: string;
  /** The reference the user gave. */
  imageRef: string;
  imageId: string;
  path: string;
  args: string[];
  config: ContainerConfig;
  hostConfig: HostConfig;
  /** NetworkingConfig.EndpointsConfig from create. */
  endpointsConfig: Record<string, EndpointSettings | null | undefined>;
  state: ContainerState;
  restartCount: number;
  /** Set by docker stop/kill so restart policies leave the container alone. */
  manualStop: boolean;
  rootfs: RootfsInfo;
  logPath: string;
  mounts: MountPoint[];
  network: NetworkInfo | null;
  stdioSocket: string;
  /**
   * Write-ahead mark: the runtime container and the netd attachment may exist. Persisted
   * before start creates them and cleared once they are released, so removal and
   * recovery know what to release even when a crash lost the rest of the start.
   * Absent on records written before the mark existed (treated as "maybe").
   */
  runtimeHeld?: boolean;
  /** Set (and persisted) when removal begins: what to finish if it is interrupted. */
  removal?: { volumes: boolean };
}

export const isActive = (s: ContainerStatus) => s === "running" || s === "paused" || s === "restarting";
