/**
 * Which accelerator qemu can really use. /dev/kvm existing proves little (on some hosts
 * every KVM VM dies at once with "failed to set MSR 0x10a"), so the probe boots the
 * guest kernel with the hardware accelerator and waits for the kernel's first console
 * line. The answer is cached on disk, keyed by what could change it (qemu binary, host
 * kernel, guest kernel), so only the first machine start after a change pays for it.
 */
import { accessSync, constants, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { release } from "node:os";
import { z } from "zod";
import type { Logger } from "../../../../lib/log.ts";
import type { Accelerator, AcceleratorChoice } from "../backend.ts";

const PROBE_TIMEOUT_MS = 15_000;
/** The kernel prints this first; seeing it means the vCPU ran guest code. */
const BOOT_MARK = "Linux version";

const cacheSchema = z.object({ key: z.string(), accel: z.enum(["kvm", "hvf", "tcg"]), note: z.string() });

/** The platform's hardware accelerator, if it has one qemu knows. */
export function hardwareAccelerator(platform = process.platform): Accelerator | undefined {
  if (platform === "linux") return "kvm";
  if (platform === "darwin") return "hvf";
  return undefined;
}

function binaryPath(binary: string): string {
  return Bun.which(binary) ?? binary;
}

function cacheKey(binary: string, kernel: string): string {
  const st = (p: string) => {
    try {
      const s = statSync(p);
      return `${s.size}:${s.mtimeMs}`;
    } catch {
      return "missing";
    }
  };
  const path = binaryPath(binary);
  return [path, st(path), release(), kernel, st(kernel)].join("|");
}

/**
 * On Linux the probe's qemu dies with vmm (setpriv's parent-death signal): a vmm stopped
 * or killed mid-probe would otherwise leave it running, and a KVM guest that hangs
 * instead of failing spins a core until someone kills it.
 */
function dieWithParent(): string[] {
  if (process.platform !== "linux") return [];
  const setpriv = Bun.which("setpriv");
  return setpriv ? [setpriv, "--pdeathsig", "KILL", "--"] : [];
}

/** Boots `kernel` under `accel` until its first console line; resolves to "" or why it failed. */
export async function bootProbe(binary: string, accel: Accelerator, kernel: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<string> {
  const proc = Bun.spawn(
    [
      ...dieWithParent(),
      binary,
      "-M",
      "microvm",
      "-accel",
      accel,
      "-cpu",
      "host",
      "-m",
      "128",
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-no-reboot",
      "-serial",
      "stdio",
      "-kernel",
      kernel,
      "-append",
      "console=ttyS0 panic=-1 reboot=t",
    ],
    { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  let seen = "";
  let booted = false;
  const stderr = new Response(proc.stderr).text();
  try {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stdout) {
      seen = (seen + decoder.decode(chunk, { stream: true })).slice(-4096);
      if (seen.includes(BOOT_MARK)) {
        booted = true;
        break;
      }
    }
  } finally {
    clearTimeout(timer);
    proc.kill("SIGKILL");
    await proc.exited;
  }
  if (booted) return "";
  const err =
    (await stderr)
      .trim()
      .split("\n")
      .find((l) => l.includes("error")) ?? (await stderr).trim().split("\n")[0];
  return err ? err.replace(/^qemu-system-\w+: (error: )?/, "") : `no boot within ${timeoutMs / 1000}s`;
}

/**
 * The accelerator to run machines with, probing once per cache key. Without a usable
 * hardware accelerator it is TCG, with a note saying why.
 */
export async function chooseAccelerator(opts: { binary: string; kernel: string; cacheFile: string; log: Logger }): Promise<AcceleratorChoice> {
  const key = cacheKey(opts.binary, opts.kernel);
  if (existsSync(opts.cacheFile)) {
    const cached = cacheSchema.safeParse(JSON.parse(readFileSync(opts.cacheFile, "utf8")));
    if (cached.success && cached.data.key === key) {
      const choice = { accel: cached.data.accel, note: cached.data.note };
      // Said once per vmm process, cached or not: a user whose machines are slow after a
      // restart reads why in this log too.
      warnIfTcg(choice, opts.log);
      return choice;
    }
  }
  const hw = hardwareAccelerator();
  let choice: AcceleratorChoice;
  if (!hw) choice = { accel: "tcg", note: `no hardware accelerator on ${process.platform}` };
  else if (hw === "kvm" && !canOpen("/dev/kvm")) choice = { accel: "tcg", note: "kvm unusable: /dev/kvm is missing or not accessible" };
  else {
    const started = performance.now();
    const failure = await bootProbe(opts.binary, hw, opts.kernel);
    opts.log.info("accelerator probe", { accel: hw, ok: !failure, failure, ms: Math.round(performance.now() - started) });
    choice = failure ? { accel: "tcg", note: `${hw} unusable: ${failure}` } : { accel: hw, note: "" };
  }
  warnIfTcg(choice, opts.log);
  writeFileSync(opts.cacheFile, JSON.stringify({ key, ...choice }));
  return choice;
}

function warnIfTcg(choice: AcceleratorChoice, log: Logger): void {
  if (choice.accel === "tcg") log.warn("machines run under TCG (software emulation, slower)", { why: choice.note });
}

function canOpen(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
