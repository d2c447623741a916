/**
 * The qemu command line of a machine (docs/architecture.md, "Machines"): a microvm with
 * the root disk as /dev/vda, the tools image as /dev/vdb, the agent's virtio-serial port,
 * the console in a file, free page reporting (on memfd RAM on Linux), QMP and a pidfile in the machine's dir,
 * and VirtioFS shares as vhost-user-fs devices.
 */
import { join } from "node:path";
import type { Accelerator, VmSpec } from "../backend.ts";

export const AGENT_PORT_NAME = "org.arcbox.agent.0";

/** Files qemu creates in the machine's directory. */
export function qemuPaths(dir: string) {
  return {
    qmp: join(dir, "qmp.sock"),
    agent: join(dir, "agent.sock"),
    pidfile: join(dir, "qemu.pid"),
    console: join(dir, "console.log"),
    log: join(dir, "qemu.log"),
  };
}

/** qemu's option values separate with ','; a literal comma is written twice. */
const esc = (v: string) => v.replaceAll(",", ",,");

export function qemuBinary(arch = process.arch): string {
  return arch === "arm64" ? "qemu-system-aarch64" : "qemu-system-x86_64";
}

/**
 * The CPU under TCG: `max` without ERMS. ERMS makes the guest kernel's user copies and
 * glibc's memcpy use `rep movsb`, which TCG runs a byte at a time: measured in the engine
 * machine, 16 MiB in 64 KiB copies took 150 ms with `rep movsb`, 11 ms with `rep movsq`
 * (the kernel's choice without ERMS) and 10 ms with an AVX2 loop (glibc's), and glibc's
 * memcpy 309 ms with ERMS, 23 ms without. Every byte of container output is copied
 * several times in the guest (pipe, socket, the agent, the serial port).
 */
export const TCG_CPU = "max,erms=off";

/**
 * Guest RAM on Linux is a memfd of 4 KiB pages (no transparent huge pages: shmem THP is
 * off by default), shared so that vhost-user backends can map it. Freed guest pages are
 * handed back at the guest's smallest page size (free page reporting order 0; qemu
 * punches each reported range out of the memfd), so memory freed in pieces smaller than
 * 2 MiB comes back too. On anonymous RAM (qemu madvises it for THP) the guest keeps the
 * kernel's default order (pageblock, 2 MiB): smaller discards would split the host's huge
 * pages, and khugepaged would fill them in again. Elsewhere (macOS) there is no memfd.
 */
export function memfdRam(platform: NodeJS.Platform = process.platform): boolean {
  return platform === "linux";
}

/**
 * The kernel parameter that sets the reporting granularity (page order). Linux 6.1 resets
 * it when virtio_balloon registers, so the guest's stage 2 applies it again after loading
 * the module (guest/boot/stage2.sh).
 */
export const PAGE_REPORTING_ORDER_PARAM = "page_reporting.page_reporting_order";

/**
 * TCG's translated-code cache (MiB). qemu's default is 1 GiB; the cache only grows (a
 * full one is flushed and refilled, never given back), by ~20 MiB per `docker run`
 * in the engine machine: 160 MiB after boot, 820 MiB after a few hundred container
 * processes. 128 MiB holds the hot code (kernel, busybox, the agent's Bun interpreter,
 * runc); no slower `docker run --rm true` measured (2.2-3.1 s vs 2.7-3.9 s, TCG).
 */
export const TCG_CODE_CACHE_MIB = 128;

export function qemuArgv(spec: VmSpec, accel: Accelerator, binary = qemuBinary(), memfd = memfdRam()): string[] {
  const p = qemuPaths(spec.dir);
  const shares = spec.shares ?? [];
  // vhost-user backends map guest RAM: with shares it must be a shareable memfd.
  const sharedRam = memfd || shares.length > 0;
  const argv = [
    binary,
    "-name",
    `${esc(spec.name)},process=arcbox-vm-${esc(spec.name)}`,
    "-M",
    "microvm",
    "-accel",
    accel === "tcg" ? `tcg,tb-size=${TCG_CODE_CACHE_MIB}` : accel,
    // TCG needs -cpu max for Bun (AVX2 and friends); with KVM/HVF the host's CPU.
    "-cpu",
    accel === "tcg" ? TCG_CPU : "host",
    "-smp",
    String(spec.cpus),
    "-m",
    String(spec.memoryMib),
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    // A guest reset (reboot, or a panic with panic=-1) ends the process: vmm decides.
    "-no-reboot",
    "-kernel",
    spec.kernel,
    "-initrd",
    spec.initrd,
    // arcbox.accel: the guest tunes its start-up for TCG (guest/boot/stage2.sh).
    "-append",
    `${spec.cmdline} arcbox.accel=${accel}${sharedRam ? ` ${PAGE_REPORTING_ORDER_PARAM}=0` : ""}`,
    // virtio-mmio devices enumerate in the order given: root first, so it is /dev/vda.
    "-drive",
    `id=root,file=${esc(spec.rootDisk)},format=raw,if=none,discard=unmap,detect-zeroes=unmap`,
    "-device",
    "virtio-blk-device,drive=root",
    "-drive",
    `id=tools,file=${esc(spec.toolsDisk)},format=raw,if=none,readonly=on`,
    "-device",
    "virtio-blk-device,drive=tools",
    "-device",
    "virtio-serial-device",
    "-chardev",
    `socket,id=agent,path=${esc(p.agent)},server=on,wait=off`,
    "-device",
    `virtserialport,chardev=agent,name=${AGENT_PORT_NAME}`,
    "-chardev",
    `file,id=console,path=${esc(p.console)}`,
    "-serial",
    "chardev:console",
    // Pages the guest frees go back to the host.
    "-device",
    "virtio-balloon-device,free-page-reporting=on",
    "-qmp",
    `unix:${esc(p.qmp)},server=on,wait=off`,
    "-pidfile",
    p.pidfile,
  ];
  if (sharedRam) argv.push("-object", `memory-backend-memfd,id=mem,size=${spec.memoryMib}M,share=on`, "-numa", "node,memdev=mem");
  if (shares.length) {
    // vhost-user needs virtio 1.0 (modern) virtio-mmio devices.
    argv.push("-global", "virtio-mmio.force-legacy=false");
    shares.forEach((s, i) => {
      argv.push("-chardev", `socket,id=fs${i},path=${esc(s.socket)}`);
      argv.push("-device", `vhost-user-fs-device,chardev=fs${i},tag=${esc(s.tag)}`);
    });
  }
  if (spec.net) {
    argv.push("-netdev", `tap,id=n0,ifname=${esc(spec.net.tap)},script=no,downscript=no`);
    argv.push("-device", `virtio-net-device,netdev=n0,mac=${spec.net.mac}`);
  }
  return argv;
}
