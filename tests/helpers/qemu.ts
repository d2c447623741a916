/**
 * Boots machines with qemu directly (no vmm), with the argv of VM-CONTRACT.md, and
 * speaks the agent protocol to them over the agent.sock chardev (AgentSession). KVM is
 * probed by booting once; where it fails (here: "failed to set MSR 0x10a") it is TCG.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { spawn, type Subprocess } from "bun";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { AGENT_SERIAL_PORT, guestArtifacts, kernelCmdline } from "../../guest/boot/contract.ts";
import { FrameDecoder, encodeFrame } from "../../guest/protocol/frames.ts";
import { SYNC, SyncScanner } from "../../guest/protocol/sync.ts";
import { MachineService, RuntimeEventSchema, type RuntimeEvent } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { buildBusyboxRootfs } from "./test-images.ts";

export const REPO = join(import.meta.dir, "..", "..");

/** Builds build/guest when it is missing (install.sh normally has). */
export function ensureGuestArtifacts(): ReturnType<typeof guestArtifacts> {
  const p = Bun.spawnSync([join(REPO, "scripts", "build-guest.sh")], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) throw new Error("scripts/build-guest.sh failed");
  return guestArtifacts(REPO);
}

/** A raw ext4 root disk holding a busybox root filesystem (mkfs.ext4 -d, no mount). */
export function busyboxRootDisk(dir: string, sizeMiB = 128): string {
  const rootfs = join(dir, "rootfs");
  buildBusyboxRootfs(rootfs);
  const disk = join(dir, "root.img");
  const p = Bun.spawnSync(["mkfs.ext4", "-q", "-F", "-d", rootfs, disk, `${sizeMiB}M`]);
  if (p.exitCode !== 0) throw new Error(`mkfs.ext4: ${p.stderr}`);
  rmSync(rootfs, { recursive: true, force: true });
  return disk;
}

export type Accel = "kvm" | "tcg";
let probed: Accel | undefined;

/**
 * KVM if a VM actually runs under it: boots the kernel with no initrd and panic=-1
 * (it panics at once and "reboots", which ends qemu under -no-reboot); any error = TCG.
 */
export async function probeAccel(kernel: string): Promise<Accel> {
  if (probed) return probed;
  probed = "tcg";
  if (existsSync("/dev/kvm")) {
    const p = spawn(["qemu-system-x86_64", "-M", "microvm", "-accel", "kvm", "-cpu", "host", "-m", "128", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
      "-kernel", kernel, "-append", "console=ttyS0 panic=-1 reboot=t"], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => p.kill(9), 15_000);
    const [code, err] = await Promise.all([p.exited, new Response(p.stderr).text()]);
    clearTimeout(timer);
    if (code === 0 && !/failed|error/i.test(err)) probed = "kvm";
  }
  return probed;
}

export interface QemuOptions {
  dir: string;
  name: string;
  rootDisk: string;
  accel: Accel;
  memoryMiB?: number;
  /** Replaces the contract's initrd (bare-boot comparison). */
  initrd?: string;
  extraCmdline?: string[];
}

/** The qemu argv vmm builds (VM-CONTRACT.md "qemu devices"), minus network. */
export function qemuArgv(o: QemuOptions): string[] {
  const g = guestArtifacts(REPO);
  return [
    "qemu-system-x86_64", "-M", "microvm", "-accel", o.accel, "-cpu", o.accel === "kvm" ? "host" : "max",
    "-m", String(o.memoryMiB ?? 512), "-smp", "1", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
    "-kernel", g.kernel, "-initrd", o.initrd ?? g.initrd, "-append", kernelCmdline({ machineName: o.name, extra: o.extraCmdline }),
    "-drive", `id=root,file=${o.rootDisk},format=raw,if=none`, "-device", "virtio-blk-device,drive=root",
    "-drive", `id=tools,file=${g.tools},format=raw,if=none,readonly=on`, "-device", "virtio-blk-device,drive=tools",
    "-device", "virtio-serial-device",
    "-chardev", `socket,id=agent,path=${join(o.dir, "agent.sock")},server=on,wait=off`,
    "-device", `virtserialport,chardev=agent,name=${AGENT_SERIAL_PORT}`,
    "-chardev", `file,id=con,path=${join(o.dir, "console.log")}`, "-serial", "chardev:con",
    "-device", "virtio-balloon-device,free-page-reporting=on",
    "-qmp", `unix:${join(o.dir, "qmp.sock")},server=on,wait=off`, "-pidfile", join(o.dir, "qemu.pid"),
  ];
}

export class Machine {
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  readonly spawnedAt = performance.now();
  constructor(readonly o: QemuOptions) {
    mkdirSync(o.dir, { recursive: true });
    this.proc = spawn(qemuArgv(o), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  }
  get agentSocket(): string {
    return join(this.o.dir, "agent.sock");
  }
  console(): string {
    try {
      return readFileSync(join(this.o.dir, "console.log"), "utf8");
    } catch {
      return "";
    }
  }
  async kill(): Promise<void> {
    this.proc.kill(9);
    await this.proc.exited;
  }
}

type Methods = typeof MachineService.method;
type Method = Exclude<keyof Methods, "list" | "events">;
export interface IoFrame {
  k: "io";
  sid: string;
  fd: number;
  data?: Uint8Array;
  eof?: boolean;
}

/** One host session on the agent's serial port: SYNC handshake, then calls, events, io. */
export class AgentSession {
  private nextId = 1;
  private pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  readonly events: RuntimeEvent[] = [];
  private eventWaiters: (() => void)[] = [];
  private ioListeners = new Set<(f: IoFrame) => void>();
  closed = false;

  private constructor(readonly socket: Socket) {}

  /** Connects to the chardev socket and waits for the guest's SYNC (the agent is up). */
  static async open(path: string, timeoutMs = 120_000): Promise<AgentSession> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(path);
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const session = new AgentSession(socket);
    const scanner = new SyncScanner();
    const decoder = new FrameDecoder();
    let synced!: () => void;
    const ready = new Promise<void>((r) => (synced = r));
    socket.on("data", (chunk: Buffer) => {
      const rest = scanner.synced ? chunk : scanner.push(chunk);
      if (rest === undefined) return;
      synced();
      for (const f of decoder.push(rest)) session.onFrame(f as { k: string });
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      session.closed = true;
      for (const p of session.pending.values()) p.reject(new Error("agent session closed"));
      session.pending.clear();
    });
    socket.write(SYNC);
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    await Promise.race([ready, new Promise((_, rej) => socket.once("close", () => rej(new Error("no SYNC from the guest"))))]);
    clearTimeout(timer);
    return session;
  }

  async call<K extends Method>(method: K, req: MessageInitShape<Methods[K]["input"]>): Promise<MessageShape<Methods[K]["output"]>> {
    const desc = MachineService.method[method] as unknown as { input: DescMessage; output: DescMessage };
    const id = this.nextId++;
    const answer = new Promise<Uint8Array>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.socket.write(encodeFrame({ k: "req", id, method, body: toBinary(desc.input, create(desc.input, req as never)) }));
    return fromBinary(desc.output, await answer) as MessageShape<Methods[K]["output"]>;
  }

  sendIo(f: Omit<IoFrame, "k">): void {
    this.socket.write(encodeFrame({ k: "io", ...f }));
  }

  onIo(l: (f: IoFrame) => void): () => void {
    this.ioListeners.add(l);
    return () => this.ioListeners.delete(l);
  }

  async waitEvent(match: (e: RuntimeEvent) => boolean, timeoutMs = 60_000): Promise<RuntimeEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find(match);
      if (e) return e;
      if (Date.now() > deadline || this.closed) throw new Error("event did not come");
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(0, deadline - Date.now()));
        this.eventWaiters.push(() => (clearTimeout(t), r()));
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private onFrame(f: { k: string; id?: number; body?: Uint8Array; error?: { code: string; message: string } }): void {
    if (f.k === "evt" && f.body) {
      this.events.push(fromBinary(RuntimeEventSchema, f.body));
      for (const w of this.eventWaiters.splice(0)) w();
    } else if (f.k === "io") {
      for (const l of this.ioListeners) l(f as unknown as IoFrame);
    } else if (f.k === "res" && f.id !== undefined) {
      const p = this.pending.get(f.id);
      if (!p) return;
      this.pending.delete(f.id);
      if (f.error) p.reject(Object.assign(new Error(f.error.message), { code: f.error.code }));
      else p.resolve(f.body ?? new Uint8Array());
    }
  }
}

/** Retries opening a session while qemu creates its socket. */
export async function openSession(m: Machine, timeoutMs = 180_000): Promise<AgentSession> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await AgentSession.open(m.agentSocket, Math.max(1_000, deadline - Date.now()));
    } catch (err) {
      if (Date.now() > deadline || m.proc.exitCode !== null) throw new Error(`no agent session: ${err}\n--- console ---\n${m.console()}`);
      await Bun.sleep(50);
    }
  }
}
