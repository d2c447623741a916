/**
 * Where the agent keeps things. State (bundles, exit files, runc's root) lives under
 * the host machine's directory in vmm's data dir; sockets live under $ARCBOX_HOME/run,
 * with short names because a Unix socket path must fit in 108 bytes.
 */
import { join } from "node:path";
import { AGENT_FIFO_IN_NAME, AGENT_FIFO_OUT_NAME, AGENT_NOTIFY_SOCKET_NAME, AGENT_SOCKET_NAME } from "../protocol/messages.ts";

export class AgentLayout {
  constructor(
    /** $ARCBOX_HOME/data/vmm/host */
    readonly stateRoot: string,
    /** $ARCBOX_HOME/run */
    readonly runDir: string,
  ) {}

  get runcRoot() {
    return join(this.stateRoot, "runc");
  }
  get containersDir() {
    return join(this.stateRoot, "containers");
  }
  get lockFile() {
    return join(this.stateRoot, "agent.lock");
  }
  get agentSocket() {
    return join(this.runDir, AGENT_SOCKET_NAME);
  }
  get notifySocket() {
    return join(this.runDir, AGENT_NOTIFY_SOCKET_NAME);
  }
  get fifoIn() {
    return join(this.runDir, AGENT_FIFO_IN_NAME);
  }
  get fifoOut() {
    return join(this.runDir, AGENT_FIFO_OUT_NAME);
  }
  get ioDir() {
    return join(this.runDir, "io");
  }

  containerDir(id: string) {
    return join(this.containersDir, id);
  }
  bundleDir(id: string) {
    return join(this.containerDir(id), "bundle");
  }
  rootfsDir(id: string) {
    return join(this.bundleDir(id), "rootfs");
  }
  /** State of a machine exec (a process in the machine itself, guest/core/machine-exec.ts). */
  machineExecDir(execId: string) {
    return join(this.stateRoot, "mexec", execId);
  }
  execDir(containerId: string, execId: string) {
    return join(this.containerDir(containerId), "execs", execId);
  }
  /**
   * Attach socket of a container or exec (ids are unique across both). Named by a short
   * hash of the id, not the id (up to 128 chars): the whole path must fit in 108 bytes.
   */
  stdioSocket(id: string) {
    return join(this.ioDir, shortName(id));
  }
  consoleSocket(id: string) {
    return join(this.ioDir, `${shortName(id)}.c`);
  }
  cgroupPath(id: string) {
    return `/arcbox/${id}`;
  }
}

/** 16 hex chars (64 bits) of the id's SHA-256: unique per home in practice, and short. */
function shortName(id: string): string {
  // Bun's native hasher: node:crypto's set-up is ~0.05-0.1 s of a TCG guest agent's start.
  return new Bun.CryptoHasher("sha256").update(id).digest("hex").slice(0, 16);
}
