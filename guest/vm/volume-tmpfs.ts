/**
 * VM mode: a type=tmpfs volume (`docker volume create --opt type=tmpfs ...`) is a tmpfs
 * in the engine machine, as Docker's local driver mounts one on its host: fsd mounts
 * nothing on the host, and the container's bind source (the volume's host directory,
 * seen under the host share) gets a tmpfs mounted over it here before the container's
 * create binds it. Every container of the volume binds that one tmpfs, so they share
 * its files; it is unmounted (its files gone) when the last of them is gone.
 *
 * Use counts are the kernel's, as for layer mounts: each container's mount namespace
 * holds a bind of the tmpfs (same device number), so the release after a container's
 * delete looks for that device in the other namespaces, and an agent restart needs no
 * bookkeeping. A create pins its tmpfs until its namespace holds the bind.
 */
import { mkdirSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mustRun, toolPath } from "../platform/run-tool.ts";
import { ENGINE_SHARES } from "./engine-layout.ts";

/** Where host paths (bind sources, volumes) appear in the machine. */
const HOST_SHARE = ENGINE_SHARES.find((s) => s.tag === "arcbox-host")!.guestDir;

let chain: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = chain.then(fn, fn);
  chain = next.catch(() => {});
  return next;
}

const pinned = new Map<string, number>();

interface MountLine {
  dev: string;
  target: string;
  fstype: string;
}

function mountLines(path: string): MountLine[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return []; // the process has gone
  }
  const out: MountLine[] = [];
  for (const l of text.split("\n")) {
    const f = l.split(" ");
    const sep = f.indexOf("-");
    if (sep < 0 || f.length < 5) continue;
    out.push({ dev: f[2]!, target: f[4]!.replace(/\\040/g, " "), fstype: f[sep + 1] ?? "" });
  }
  return out;
}

/** This machine's volume tmpfs mounts (in the agent's own mount namespace). */
function volumeTmpfsMounts(): MountLine[] {
  return mountLines("/proc/self/mountinfo").filter((m) => m.fstype === "tmpfs" && m.target.startsWith(`${HOST_SHARE}/`));
}

/** Device numbers mounted in any other mount namespace (the containers'). */
function devicesInOtherNamespaces(): Set<string> {
  const own = readlinkSync("/proc/self/ns/mnt");
  const seen = new Set<string>([own]);
  const devs = new Set<string>();
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let ns: string;
    try {
      ns = readlinkSync(`/proc/${pid}/ns/mnt`);
    } catch {
      continue;
    }
    if (seen.has(ns)) continue;
    seen.add(ns);
    for (const m of mountLines(`/proc/${pid}/mountinfo`)) devs.add(m.dev);
  }
  return devs;
}

/**
 * Mounts the tmpfs of each volume mount that asks for one (unless there already) and
 * pins it; the returned function unpins, once the create's namespace holds the binds.
 */
export function acquireVolumeTmpfs(mounts: { source: string; volumeTmpfs?: string }[]): Promise<() => void> {
  const wanted = mounts.filter((m): m is { source: string; volumeTmpfs: string } => m.volumeTmpfs !== undefined);
  if (!wanted.length) return Promise.resolve(() => {});
  return serial(async () => {
    const done: string[] = [];
    const unpin = () => {
      for (const t of done.splice(0)) {
        const n = (pinned.get(t) ?? 1) - 1;
        if (n > 0) pinned.set(t, n);
        else pinned.delete(t);
      }
    };
    try {
      for (const m of wanted) {
        if (!m.source.startsWith(`${HOST_SHARE}/`)) throw new Error(`a volume tmpfs must be under ${HOST_SHARE}: ${m.source}`);
        pinned.set(m.source, (pinned.get(m.source) ?? 0) + 1);
        done.push(m.source);
        if (volumeTmpfsMounts().some((t) => t.target === m.source)) continue;
        mkdirSync(m.source, { recursive: true, mode: 0o755 });
        await mustRun([toolPath("mount"), "-t", "tmpfs", ...(m.volumeTmpfs ? ["-o", m.volumeTmpfs] : []), "tmpfs", m.source], `mounting the tmpfs volume at ${m.source}`);
      }
    } catch (err) {
      unpin();
      throw err;
    }
    return unpin;
  });
}

/** Unmounts the volume tmpfs mounts no container holds and no create is about to. */
export function releaseUnusedVolumeTmpfs(): Promise<string[]> {
  return serial(async () => {
    const candidates = volumeTmpfsMounts().filter((m) => !pinned.has(m.target));
    if (!candidates.length) return [];
    const used = devicesInOtherNamespaces();
    const released: string[] = [];
    for (const m of candidates) {
      if (used.has(m.dev)) continue;
      await mustRun([toolPath("umount"), m.target], `unmounting the tmpfs volume at ${m.target}`);
      released.push(m.target);
    }
    return released;
  });
}
