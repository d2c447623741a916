/**
 * The small interfaces the Docker API's routers depend on, as moby's routers depend
 * on their own backend interfaces rather than on the daemon: each router (and exec)
 * sees only the calls it makes. ContainerManager, ContainerQueries and ExecManager
 * implement them; tests and other callers may substitute their own.
 */
import type { ContainerRecord } from "./container-record.ts";
import type { ExitResult } from "./container-lifecycle.ts";
import type { ExecRecord } from "./exec-manager.ts";
import type { RuntimeEvent } from "../../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { RootfsHelpers } from "./rootfs-helper.ts";

/** Finding records; every router needs it. */
export interface ContainerLookup {
  /** By ID, unique ID prefix or name; Docker's "No such container" otherwise. */
  get(ref: string): ContainerRecord;
  /** The same without throwing: undefined when nothing, or more than one, matches. */
  find(ref: string): ContainerRecord | undefined;
  /** Every record. */
  list(): ContainerRecord[];
}

/** Container events with Docker's attributes (labels, image, name). */
export interface ContainerEvents {
  emit(rec: ContainerRecord, action: string, extra?: Record<string, string>): void;
}

/** POST /containers/create, rename, update. */
export interface ContainerConfigBackend {
  create(raw: unknown, requestedName: string | undefined): Promise<{ Id: string; Warnings: string[] }>;
  rename(ref: string, newName: string): Promise<void>;
  update(ref: string, body: unknown): Promise<string[]>;
}

/** Network connect/disconnect and `rm --link`: the record's network settings. */
export interface ContainerNetworkBackend {
  /** The new EndpointsConfig and, while running, netd's endpoints (inspect). */
  saveNetworkChange(rec: ContainerRecord, endpointsConfig: ContainerRecord["endpointsConfig"], live: ContainerRecord["network"] | undefined): void;
  /** HostConfig.Links without a removed link (used at the next start). */
  saveLinks(rec: ContainerRecord, links: string[] | null): void;
}

/** The state changes clients ask for; each goes through the container lifecycle. */
export interface ContainerStateBackend {
  /** False when it was already running (Docker's 304). */
  start(ref: string): Promise<boolean>;
  /** False when it was not running (Docker's 304). */
  stop(ref: string, signal: string | undefined, timeoutSec: number | undefined): Promise<boolean>;
  restart(ref: string, signal: string | undefined, timeoutSec: number | undefined): Promise<void>;
  kill(ref: string, signal?: string): Promise<void>;
  pause(ref: string): Promise<void>;
  unpause(ref: string): Promise<void>;
  remove(ref: string, opts: { force: boolean; volumes: boolean }): Promise<void>;
}

/** `wait` conditions and followers (logs -f); an aborted signal drops the waiter. */
export interface ContainerWaitBackend {
  waitExit(id: string, signal?: AbortSignal): Promise<ExitResult>;
  waitRemoved(id: string, signal?: AbortSignal): Promise<ExitResult>;
  /** The exit after which no restart policy brings it back. */
  waitStopped(id: string, signal?: AbortSignal): Promise<void>;
}

/** Attach: a running container's stdio, or its stdio once it starts. */
export interface ContainerAttachBackend extends ContainerLookup, ContainerEvents {
  whenStdio(rec: ContainerRecord, join: (stdioSocket: string) => Promise<void>): void;
}

/** Files of a container: docker cp, export, diff. */
export interface ContainerFilesBackend extends ContainerLookup, ContainerEvents {
  containerDir(id: string): string;
  /** Where a container's files are read and written: the host, or the engine machine. */
  readonly rootfsHelpers: RootfsHelpers;
  /** Runs `fn` while no start, remove or other exclusive operation runs on the container. */
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
}

/** Pausing for the duration of an operation (commit), through the lifecycle. */
export interface ContainerPauser {
  whilePaused<T>(ref: string, fn: () => Promise<T>): Promise<T>;
}

/** What the runtime answers about a container: TTY size, top, stats, commit. */
export interface ContainerRuntimeQueries {
  resizeTty(id: string, height: number, width: number): Promise<void>;
  top(ref: string, psArgs: string): Promise<{ Titles: string[]; Processes: string[][] }>;
  statsSample(rec: ContainerRecord): Promise<Record<string, unknown>>;
  commit(ref: string, o: CommitOptions): Promise<string>;
}

export interface CommitOptions {
  reference: string;
  comment: string;
  author: string;
  configJson: string;
  changes: string[];
  pause: boolean;
}

/** The /containers router. */
export type ContainerBackend = ContainerLookup &
  ContainerEvents &
  ContainerConfigBackend &
  ContainerNetworkBackend &
  ContainerStateBackend &
  ContainerWaitBackend &
  ContainerAttachBackend &
  ContainerFilesBackend;

/** What exec needs of containers: records, events, and the runtime's exec exits. */
export interface ExecContainers extends ContainerLookup, ContainerEvents {
  /** Runtime exec exits are forwarded here. */
  onExecExit: (ev: RuntimeEvent) => void;
  /** Called once a container's record is gone (its execs go with it). */
  onRemoved: (id: string) => void;
}

/** The /exec router and the health checks. */
export interface ExecBackend {
  create(containerRef: string, raw: unknown): string;
  get(id: string): ExecRecord;
  /** The checks a start makes before anything runs. */
  startable(id: string): { e: ExecRecord; rec: ContainerRecord };
  /** Starts the process; returns its stdio socket ("" when detached). */
  start(id: string, opts: { detach: boolean; tty?: boolean; consoleSize?: [number, number] }): Promise<string>;
  settle(e: ExecRecord): Promise<void>;
  resize(id: string, height: number, width: number): Promise<void>;
  /** The client detached with its detach keys. */
  detached(id: string): void;
  inspect(id: string): Record<string, unknown>;
  idsOf(containerId: string): string[];
}
