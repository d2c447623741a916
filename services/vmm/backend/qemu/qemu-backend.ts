/**
 * The qemu backend: one detached qemu process per machine (own session, stdout/stderr
 * to `qemu.log` in the machine's dir), controlled over QMP. vmm learns that a VM ended
 * from the QMP connection closing (and, for a VM it started itself, the process exit
 * status); QMP's SHUTDOWN event says whether the guest powered off, reset or was
 * stopped by the host. A VM left running by an earlier vmm is adopted by its pidfile.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import type { Subprocess } from "bun";
import type { Logger } from "../../../../lib/log.ts";
import { MachineError } from "../../core/machine-error.ts";
import type { AcceleratorChoice, VmBackend, VmExit, VmHandle, VmSpec } from "../backend.ts";
import { QmpClient, type QmpEvent } from "./qmp-client.ts";
import { qemuArgv, qemuBinary, qemuPaths } from "./qemu-argv.ts";
import { isQemuFor, livePid, logTail, processAlive } from "./qemu-process.ts";

const START_MARK = "=== arcbox: starting qemu";
const QMP_CONNECT_TIMEOUT_MS = 15_000;
const QUIT_GRACE_MS = 3_000;
const EXIT_GRACE_MS = 5_000;

export interface QemuBackendOptions {
  log: Logger;
  /** The accelerator to use (probed once, cached by the caller). */
  accelerator: () => Promise<AcceleratorChoice>;
  binary?: string;
}

export class QemuBackend implements VmBackend {
  readonly name = "qemu";
  private readonly binary: string;

  constructor(private readonly opts: QemuBackendOptions) {
    this.binary = opts.binary ?? qemuBinary();
  }

  prepare(): Promise<AcceleratorChoice> {
    return this.opts.accelerator();
  }

  async start(spec: VmSpec): Promise<VmHandle> {
    const accel = await this.opts.accelerator();
    const p = qemuPaths(spec.dir);
    for (const f of [p.qmp, p.agent, p.pidfile]) rmSync(f, { force: true });
    const argv = qemuArgv(spec, accel.accel, this.binary);
    const logFd = openSync(p.log, "a");
    let proc: Subprocess;
    try {
      const note = accel.note ? ` (${accel.note})` : "";
      writeSync(logFd, `${START_MARK} ${new Date().toISOString()} accel=${accel.accel}${note}\n${argv.join(" ")}\n`);
      proc = Bun.spawn(argv, {
        stdio: ["ignore", logFd, logFd],
        // Own session: the VM outlives vmm, the supervisor and their process groups.
        detached: true,
      });
      proc.unref();
    } catch (err) {
      throw new MachineError("internal", `cannot run ${this.binary}: ${(err as Error).message}`, { cause: err });
    } finally {
      closeSync(logFd);
    }
    this.opts.log.info("started qemu", { machine: spec.name, pid: proc.pid, accel: accel.accel, note: accel.note || undefined });
    const vm = new QemuVm(spec.name, proc.pid, accel, p, this.opts.log, proc);
    try {
      await vm.connect(QMP_CONNECT_TIMEOUT_MS);
    } catch (err) {
      proc.kill("SIGKILL");
      const code = await proc.exited;
      const tail = logTail(p.log, START_MARK);
      throw new MachineError("internal", `qemu did not start (exit ${code}): ${tail || (err as Error).message}`, { cause: err });
    }
    return vm;
  }

  async adopt(name: string, dir: string): Promise<VmHandle | undefined> {
    const p = qemuPaths(dir);
    const pid = livePid(p.pidfile, p.qmp);
    if (!pid) return undefined;
    const accel = acceleratorOf(pid);
    const vm = new QemuVm(name, pid, accel, p, this.opts.log);
    try {
      await vm.connect(QMP_CONNECT_TIMEOUT_MS);
    } catch (err) {
      this.opts.log.warn("a qemu process is alive but its QMP does not answer", { machine: name, pid, error: err });
      return undefined;
    }
    this.opts.log.info("adopted running qemu", { machine: name, pid, accel: accel.accel });
    return vm;
  }
}

/** The accelerator a running qemu was started with, from its command line. */
function acceleratorOf(pid: number): AcceleratorChoice {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const a = argv[argv.indexOf("-accel") + 1]?.split(",")[0]; // "tcg,tb-size=…"
    if (a === "kvm" || a === "hvf" || a === "tcg") return { accel: a, note: "" };
  } catch {}
  return { accel: "tcg", note: "" };
}

class QemuVm implements VmHandle {
  private qmp: QmpClient | undefined;
  private shutdown: { guest: boolean; reason: string } | undefined;
  private killedByUs = false;
  private released = false;
  private resolveExit!: (e: VmExit) => void;
  readonly exited: Promise<VmExit>;

  constructor(
    private readonly name: string,
    readonly pid: number,
    readonly accel: AcceleratorChoice,
    private readonly paths: ReturnType<typeof qemuPaths>,
    private readonly log: Logger,
    private readonly child?: Subprocess,
  ) {
    this.exited = new Promise((r) => (this.resolveExit = r));
  }

  get agentSocket(): string {
    return this.paths.agent;
  }

  /** Connects QMP, retrying while qemu creates its socket (start-up only, bounded). */
  async connect(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastErr: unknown;
    while (Date.now() < deadline) {
      if (this.child ? this.child.exitCode !== null || this.child.signalCode !== null : !processAlive(this.pid)) break;
      try {
        this.qmp = await QmpClient.connect(this.paths.qmp, (e) => this.onEvent(e), Math.max(1000, deadline - Date.now()));
        break;
      } catch (err) {
        lastErr = err;
        await Bun.sleep(10);
      }
    }
    if (!this.qmp) throw lastErr instanceof Error ? lastErr : new MachineError("unavailable", "qemu exited before its QMP socket answered");
    const qmp = this.qmp;
    void qmp.closedSignal.then(() => this.onQmpClosed());
  }

  async powerdown(): Promise<void> {
    await this.qmp?.execute("system_powerdown");
  }

  async kill(): Promise<void> {
    this.killedByUs = true;
    if (!this.alive()) return;
    // `quit` lets qemu flush and close its disks; SIGKILL if it does not go.
    await Promise.race([this.qmp?.execute("quit").catch(() => {}), Bun.sleep(QUIT_GRACE_MS)]);
    const gone = await Promise.race([this.exited.then(() => true), Bun.sleep(QUIT_GRACE_MS).then(() => false)]);
    if (!gone) {
      try {
        process.kill(this.pid, "SIGKILL");
      } catch {}
    }
    await this.exited;
  }

  async status(): Promise<string> {
    if (!this.qmp?.isOpen) return "exited";
    return (await this.qmp.queryStatus()).status;
  }

  release(): void {
    this.released = true;
    this.qmp?.close();
  }

  private alive(): boolean {
    return this.child ? this.child.exitCode === null && this.child.signalCode === null : processAlive(this.pid);
  }

  private onEvent(e: QmpEvent): void {
    if (e.event === "SHUTDOWN") {
      this.shutdown = { guest: e.data.guest === true, reason: String(e.data.reason ?? "") };
      this.log.info("qemu shutdown event", { machine: this.name, ...this.shutdown });
    } else if (e.event === "GUEST_PANICKED") {
      this.shutdown = { guest: true, reason: "guest-panic" };
    }
  }

  private async onQmpClosed(): Promise<void> {
    if (this.released) return;
    let status = "";
    if (this.child) {
      const code = await this.child.exited;
      status = this.child.signalCode ? `signal ${this.child.signalCode}` : `exit code ${code}`;
    } else {
      // Not our child: we cannot wait(2) for it. QMP closes as qemu exits; give it a moment.
      const deadline = Date.now() + EXIT_GRACE_MS;
      while (isQemuFor(this.pid, this.paths.qmp) && Date.now() < deadline) await Bun.sleep(20);
      if (isQemuFor(this.pid, this.paths.qmp)) {
        // QMP gone but qemu alive: it is wedged. Reclaim it; the VM is lost either way.
        try {
          process.kill(this.pid, "SIGKILL");
        } catch {}
        status = "QMP closed while qemu was still running; killed it";
      }
    }
    this.resolveExit(this.classify(status));
  }

  private classify(status: string): VmExit {
    const s = this.shutdown;
    if (this.killedByUs) return { kind: "killed", detail: "" };
    if (s?.guest && s.reason === "guest-shutdown") return { kind: "poweroff", detail: "" };
    if (s?.reason === "guest-reset") return { kind: "crashed", detail: "the guest reset (reboot or kernel panic; see the console log)" };
    if (s?.reason === "guest-panic") return { kind: "crashed", detail: "guest kernel panic (see the console log)" };
    if (s && !s.guest) return { kind: "killed", detail: `stopped by the host (${s.reason})` };
    const tail = logTail(this.paths.log, START_MARK);
    return { kind: "crashed", detail: [status || "qemu exited", tail].filter(Boolean).join(": ") };
  }
}
