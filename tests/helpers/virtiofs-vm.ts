/**
 * Boots a throwaway qemu VM (TCG, microvm, Debian's cloud kernel, a busybox initramfs)
 * with vhost-user-fs devices, runs a shell script in it and returns its serial console
 * output. The VirtioFS tests and bench/fs.ts share it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { REPO } from "./daemon.ts";
import { waitFor } from "./wait.ts";

export interface GuestArtifacts {
  kernel: string;
  initrd: string;
  probe: string;
}
export interface ShareDevice {
  tag: string;
  socket: string;
}

/** Kernel + initramfs (+ the static probe binary), built once into build/vfs-guest. */
export async function virtiofsGuest(): Promise<GuestArtifacts> {
  const p = Bun.spawn(["bash", join(REPO, "tests/helpers/virtiofs/build-guest.sh"), join(REPO, "build/vfs-guest")], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`build-guest.sh failed: ${err}`);
  const [kernel, initrd, probe] = out.trim().split(" ");
  if (!kernel || !initrd || !probe) throw new Error(`build-guest.sh printed ${out}`);
  return { kernel, initrd, probe };
}

export interface VirtiofsdOptions {
  binary?: string[];
  socket: string;
  dir: string;
  readOnly?: boolean;
  cache?: "auto" | "always" | "never";
  stats?: string;
  /** Lowers the server's soft limit on open files (RLIMIT_NOFILE) to this. */
  maxOpenFiles?: number;
}

/** Starts arcbox-virtiofsd (or another vhost-user-fs backend given as `binary`) and waits for its socket. */
export async function startVirtiofsd(o: VirtiofsdOptions): Promise<Subprocess> {
  const argv = o.binary ?? [
    ...(o.maxOpenFiles ? ["prlimit", `--nofile=${o.maxOpenFiles}:`] : []),
    join(REPO, "native/bin/arcbox-virtiofsd"),
    "--socket",
    o.socket,
    "--shared-dir",
    o.dir,
    ...(o.readOnly ? ["--read-only"] : []),
    ...(o.cache ? ["--cache", o.cache] : []),
    ...(o.stats ? ["--stats", o.stats] : []),
  ];
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
  await waitFor(`${o.socket} to listen`, async () => existsSync(o.socket) || (p.exitCode !== null && Promise.reject(new Error(`${argv[0]} exited ${p.exitCode}`))));
  return p;
}

function hostKhz(): number {
  const m = /cpu MHz\s*:\s*([\d.]+)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return Math.round(Number(m?.[1] ?? 2000) * 1000);
}

/** Wraps /test.sh as a newc cpio archive; the kernel unpacks it on top of the base initramfs. */
async function scriptArchive(dir: string, script: string): Promise<Uint8Array> {
  writeFileSync(join(dir, "test.sh"), script);
  const p = Bun.spawn(["cpio", "-o", "-H", "newc", "--owner", "0:0", "--quiet"], { cwd: dir, stdin: "pipe", stdout: "pipe" });
  p.stdin.write("test.sh\n");
  p.stdin.end();
  const out = new Uint8Array(await new Response(p.stdout).arrayBuffer());
  if ((await p.exited) !== 0) throw new Error("cpio failed");
  return out;
}

export interface BootOptions {
  shares: ShareDevice[];
  script: string;
  memMiB?: number;
  timeoutMs?: number;
  /** Called for every console line as it arrives (e.g. to act on a marker the script prints). */
  onLine?: (line: string) => void | Promise<void>;
}
export interface GuestRun {
  output: string;
  exitCode: number | null;
  lines: string[];
}

/**
 * The guest script's `CHECK <name> ok|FAIL <why>` lines: each named check that did not
 * pass, as "<name>: FAIL <why>" or "<name>: missing"; empty when all passed.
 */
export function failedChecks(run: GuestRun, names: readonly string[]): string[] {
  const got = new Map(
    run.lines.flatMap((l) => {
      const m = /^CHECK (\S+) (ok|FAIL)(.*)$/.exec(l);
      return m ? [[m[1]!, m[2] === "ok" ? "ok" : `FAIL${m[3]}`] as const] : [];
    }),
  );
  return names.filter((n) => got.get(n) !== "ok").map((n) => `${n}: ${got.get(n) ?? "missing"}`);
}

export async function bootGuest(o: BootOptions): Promise<GuestRun> {
  const g = await virtiofsGuest();
  const tmp = mkdtempSync("/tmp/arcbox-vfs-boot-");
  try {
    const initrd = join(tmp, "initrd");
    const extra = await scriptArchive(tmp, o.script);
    await Bun.write(initrd, new Blob([await Bun.file(g.initrd).arrayBuffer(), extra]));
    const mem = o.memMiB ?? 256;
    const argv = [
      "qemu-system-x86_64",
      "-M",
      "microvm",
      "-cpu",
      "max",
      "-m",
      `${mem}M`,
      "-smp",
      "1",
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-no-reboot",
      "-object",
      `memory-backend-memfd,id=mem,size=${mem}M,share=on`,
      "-numa",
      "node,memdev=mem",
      "-global",
      "virtio-mmio.force-legacy=false",
      ...o.shares.flatMap((s, i) => ["-chardev", `socket,id=fs${i},path=${s.socket}`, "-device", `vhost-user-fs-device,chardev=fs${i},tag=${s.tag}`]),
      "-serial",
      "stdio",
      "-kernel",
      g.kernel,
      "-initrd",
      initrd,
      "-append",
      `console=ttyS0 reboot=t panic=-1 tsc_early_khz=${hostKhz()} quiet`,
    ];
    const qemu = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => qemu.kill("SIGKILL"), o.timeoutMs ?? 240_000);
    const lines: string[] = [];
    let output = "",
      pending = "";
    const dec = new TextDecoder();
    for await (const chunk of qemu.stdout) {
      const text = dec.decode(chunk, { stream: true }).replaceAll("\r", "");
      output += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        lines.push(line);
        await o.onLine?.(line);
      }
    }
    const stderr = await new Response(qemu.stderr).text();
    const code = await qemu.exited;
    clearTimeout(timer);
    if (code !== 0) output += `\n[qemu exited ${code}: ${stderr}]`;
    const exit = /GUEST-EXIT (\d+)/.exec(output);
    return { output, lines, exitCode: exit ? Number(exit[1]) : null };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
