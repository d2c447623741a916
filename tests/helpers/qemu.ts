/**
 * Boots machines with qemu directly (no vmm), with the argv of VM-CONTRACT.md, and
 * speaks the agent protocol to them over the agent.sock chardev (AgentSession). KVM is
 * probed by booting once; where it fails (here: "failed to set MSR 0x10a") it is TCG.
 */
import { spawn, type Subprocess } from "bun";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { AGENT_SERIAL_PORT, guestArtifacts, kernelCmdline } from "../../guest/boot/contract.ts";
import { AgentSession } from "./agent-session.ts";
import { buildBusyboxRootfs } from "./test-images.ts";

export const REPO = join(import.meta.dir, "..", "..");

/** Brings build/guest up to date: scripts/build-guest.sh rebuilds only what is older than its inputs. */
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
    const p = spawn(
      [
        "qemu-system-x86_64",
        "-M",
        "microvm",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "128",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-no-reboot",
        "-kernel",
        kernel,
        "-append",
        "console=ttyS0 panic=-1 reboot=t",
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
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
  /** More qemu arguments (e.g. a user-mode network for DHCP). */
  extraArgs?: string[];
}

/** The qemu argv vmm builds (VM-CONTRACT.md "qemu devices"), minus network. */
export function qemuArgv(o: QemuOptions): string[] {
  const g = guestArtifacts(REPO);
  return [
    "qemu-system-x86_64",
    "-M",
    "microvm",
    "-accel",
    o.accel,
    "-cpu",
    o.accel === "kvm" ? "host" : "max",
    "-m",
    String(o.memoryMiB ?? 512),
    "-smp",
    "1",
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-no-reboot",
    "-kernel",
    g.kernel,
    "-initrd",
    o.initrd ?? g.initrd,
    "-append",
    kernelCmdline({ machineName: o.name, extra: o.extraCmdline }),
    "-drive",
    `id=root,file=${o.rootDisk},format=raw,if=none`,
    "-device",
    "virtio-blk-device,drive=root",
    "-drive",
    `id=tools,file=${g.tools},format=raw,if=none,readonly=on`,
    "-device",
    "virtio-blk-device,drive=tools",
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent,path=${join(o.dir, "agent.sock")},server=on,wait=off`,
    "-device",
    `virtserialport,chardev=agent,name=${AGENT_SERIAL_PORT}`,
    "-chardev",
    `file,id=con,path=${join(o.dir, "console.log")}`,
    "-serial",
    "chardev:con",
    "-device",
    "virtio-balloon-device,free-page-reporting=on",
    "-qmp",
    `unix:${join(o.dir, "qmp.sock")},server=on,wait=off`,
    "-pidfile",
    join(o.dir, "qemu.pid"),
    ...(o.extraArgs ?? []),
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

/**
 * Opens a session as vmm should: wait for the guest's SYNC before sending frames, and
 * reconnect (after a pause) when it does not come within a few seconds: the guest may
 * not have seen the previous connection close (guest/README.md, "Sessions").
 */
export async function openSession(m: Machine, timeoutMs = 180_000, handshakeMs = 10_000): Promise<AgentSession> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await AgentSession.open(m.agentSocket, { sync: true, timeoutMs: Math.min(handshakeMs, Math.max(1_000, deadline - Date.now())) });
    } catch (err) {
      if (Date.now() > deadline || m.proc.exitCode !== null) throw new Error(`no agent session: ${err}\n--- console ---\n${m.console()}`);
      await Bun.sleep(500);
    }
  }
}
