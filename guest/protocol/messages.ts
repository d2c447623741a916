/**
 * Messages of the agent protocol (see guest/README.md). The envelope is msgpack; request
 * and response bodies are the protobuf binary encoding of MachineService's messages, so
 * the agent and vmm share one typed, versioned contract (machines.proto).
 */
import type { ErrorCode } from "../../lib/errors.ts";
import type { MachineService } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";

/** The MachineService calls an agent serves: all but vmm's own (list, events, ensureRunning). */
export type AgentMethod = Exclude<keyof typeof MachineService.method, "list" | "events" | "ensureRunning">;

/** vmm -> agent: call `method` (a MachineService method's local name, e.g. "createContainer"). */
export interface RequestFrame {
  k: "req";
  id: number;
  method: string;
  body: Uint8Array;
}

/** agent -> vmm: the answer to request `id`: a body, or an error with an ArcBox code. */
export interface ResponseFrame {
  k: "res";
  id: number;
  body?: Uint8Array;
  error?: { code: ErrorCode; message: string };
}

/** agent -> vmm, unsolicited: a RuntimeEvent (protobuf binary). */
export interface EventFrame {
  k: "evt";
  body: Uint8Array;
}

/**
 * Stdio of a machine exec, both ways: fd 0 host -> agent, fd 1/2 agent -> host (a TTY
 * has only fd 1). `eof` ends that fd (fd 0: closes the process's stdin).
 * Also the bytes of a socket stream (OpenFrame): fd 0 host -> guest socket, fd 1 back;
 * `close` says the stream is gone both ways.
 */
export interface IoFrame {
  k: "io";
  /** The machine exec's id, or the socket stream's. */
  sid: string;
  fd: number;
  data?: Uint8Array;
  eof?: boolean;
  close?: boolean;
  /** A files stream's end, agent -> host: the operation's exit status (with `close`). */
  code?: number;
  /**
   * Flow control of a files stream: the receiver of `fd`'s bytes asks the sender to
   * stop (`pause`) or go on (`resume`) reading its source, so neither end buffers
   * more than what is in flight on the link.
   */
  pause?: boolean;
  resume?: boolean;
  /**
   * A files stream's output window, host -> agent: how many output bytes (fd 1 and 2
   * together, counted from the start) the host has handed on. The agent keeps at most
   * FILES_WINDOW bytes sent and not yet acknowledged, whatever the link's latency: a
   * `pause` alone arrives only after everything already in flight.
   */
  ack?: number;
}

/**
 * host -> agent: connect to the Unix socket `path` in the guest (a container's or an
 * exec's stdio socket) and carry its bytes as io frames of stream `sid` (VM mode: the
 * host's attach connections reach the shims inside the machine this way).
 */
export interface OpenFrame {
  k: "open";
  sid: string;
  path: string;
}

/**
 * host -> agent: run a container-files operation (docker cp, export, diff, commit in VM
 * mode; guest/core/rootfs-files.ts) as stream `sid`: fd 0 in (a tar to unpack), fd 1
 * out (the answer line and a tar), fd 2 out (diagnostics), then `close` with `code`.
 */
export interface FilesFrame {
  k: "files";
  sid: string;
  req: unknown;
}

export type AgentFrame = RequestFrame | ResponseFrame | EventFrame | IoFrame | OpenFrame | FilesFrame;

/** Name of the agent's socket (under $ARCBOX_HOME/run) and of its shim notification socket. */
export const AGENT_SOCKET_NAME = "guest-agent.sock";
export const AGENT_NOTIFY_SOCKET_NAME = "guest-agent.notify.sock";
/** vmm's session with the host agent: a FIFO pair under $ARCBOX_HOME/run (vmm → agent, agent → vmm). */
export const AGENT_FIFO_IN_NAME = "guest-agent.in.fifo";
export const AGENT_FIFO_OUT_NAME = "guest-agent.out.fifo";
