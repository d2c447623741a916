/**
 * Read access to an image's filesystem for the builder: the files of a stage or image
 * named by `COPY --from`, the parent's /etc/passwd for `--chown=name`, and whether a
 * COPY destination is an existing directory. imaged prepares a throwaway snapshot
 * (its lower layers are what we read); a read-only overlay is mounted by a spawned
 * `mount` only when a merged tree is needed, never in the Bun process.
 */
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync } from "node:fs";
import { join, posix } from "node:path";
import { call, callIdempotent, type Backends } from "../core/backends.ts";
import { BuildError } from "./errors.ts";

export class ImageView {
  private mounted: string | undefined;
  private empty: string | undefined;

  private constructor(
    private readonly backends: Backends,
    private readonly snapshotId: string,
    readonly lowerDirs: string[],
    private readonly layersBase: string,
    private readonly relativeLowerDirs: string[],
    private readonly tmpBase: string,
  ) {}

  static async open(backends: Backends, image: string, tmpBase: string): Promise<ImageView> {
    const snapshotId = `build-${crypto.randomUUID().replace(/-/g, "")}`;
    const res = await call(() => backends.images.prepareRootfs({ image, containerId: snapshotId }));
    return new ImageView(backends, snapshotId, res.lowerDirs, res.layersBase, res.relativeLowerDirs, tmpBase);
  }

  /** The host path of an image path in the uppermost layer holding it (whiteouts respected). */
  lookup(path: string): string | undefined {
    const rel = posix.normalize(`/${path}`).slice(1);
    if (!rel) return this.lowerDirs[0];
    const wh = posix.join(posix.dirname(rel), `.wh.${posix.basename(rel)}`);
    for (const dir of this.lowerDirs) {
      const p = join(dir, rel);
      // lstat only, no link on the way: a link in the image must never lead to the host's files.
      if (lexists(p) && !linkOnTheWay(dir, rel)) return p;
      if (lexists(join(dir, wh))) return undefined;
    }
    return undefined;
  }

  isDirectory(path: string): boolean {
    const p = this.lookup(path);
    try {
      return !!p && lstatSync(p).isDirectory();
    } catch {
      return false;
    }
  }

  /** A merged, read-only view of the whole tree (mounted on first use). */
  async root(): Promise<string> {
    if (this.lowerDirs.length === 1) return this.lowerDirs[0]!;
    mkdirSync(this.tmpBase, { recursive: true, mode: 0o700 });
    if (this.lowerDirs.length === 0) return (this.empty ??= mkdtempSync(join(this.tmpBase, "empty-")));
    if (this.mounted) return this.mounted;
    const dir = mkdtempSync(join(this.tmpBase, "from-"));
    const p = Bun.spawn(["mount", "-t", "overlay", "overlay", "-o", `ro,lowerdir=${this.relativeLowerDirs.join(":")}`, dir], { cwd: this.layersBase, stdout: "ignore", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    if (code !== 0) {
      rmdirSync(dir);
      throw new BuildError(`cannot read the image's files: mount failed: ${err.trim()}`);
    }
    this.mounted = dir;
    return dir;
  }

  /** uid and gid of `user[:group]` (names from the image's /etc/passwd and /etc/group). */
  resolveOwner(spec: string): { uid: number; gid: number } {
    const [user, group] = spec.split(":", 2) as [string, string | undefined];
    const table = (file: string) => {
      const p = this.lookup(file);
      if (!p || !lstatSync(p).isFile()) return [];
      try {
        return readFileSync(p, "utf8")
          .split("\n")
          .map((l) => l.split(":"));
      } catch {
        return [];
      }
    };
    let uid: number;
    let gid: number | undefined;
    if (/^\d+$/.test(user)) uid = Number(user);
    else {
      const row = table("/etc/passwd").find((r) => r[0] === user);
      if (!row) throw new BuildError(`unable to convert uid/gid chown string to host mapping: can't find uid for user ${user}: no such user: ${user}`);
      uid = Number(row[2]);
      gid = Number(row[3]);
    }
    if (group !== undefined) {
      if (/^\d+$/.test(group)) gid = Number(group);
      else {
        const row = table("/etc/group").find((r) => r[0] === group);
        if (!row) throw new BuildError(`unable to convert uid/gid chown string to host mapping: can't find gid for group ${group}: no such group: ${group}`);
        gid = Number(row[2]);
      }
    }
    return { uid, gid: gid ?? uid };
  }

  async close(): Promise<void> {
    if (this.mounted) {
      const dir = this.mounted;
      this.mounted = undefined;
      const p = Bun.spawn(["umount", dir], { stdout: "ignore", stderr: "ignore" });
      if ((await p.exited) !== 0) await Bun.spawn(["umount", "-l", dir]).exited;
      try {
        rmdirSync(dir);
      } catch {}
    }
    if (this.empty) rmdirSync(this.empty);
    await callIdempotent(() => this.backends.images.releaseRootfs({ containerId: this.snapshotId }));
  }
}

function linkOnTheWay(dir: string, rel: string): boolean {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) {
    try {
      if (lstatSync(join(dir, ...parts.slice(0, i))).isSymbolicLink()) return true;
    } catch {
      return false;
    }
  }
  return false;
}

function lexists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

/** An image reference with no filesystem: `scratch`. */
export const SCRATCH = "scratch";
