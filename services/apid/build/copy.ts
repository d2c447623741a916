/**
 * COPY and ADD: the sources (context paths with globs, or paths in another stage or
 * image), their checksums for the cache, and a staging directory holding exactly the
 * files the step adds, laid out at their image paths. imaged turns that directory
 * into the step's layer. Unchanged context files are hard-linked, not copied: the
 * context is private, unpacked owned by root, and never written.
 */
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  statSync,
  symlinkSync,
  utimesSync,
  type Stats,
} from "node:fs";
import { basename, join, posix } from "node:path";
import { BuildError } from "./errors.ts";
import { resolveInContext } from "./context-paths.ts";

export interface CopySource {
  /** Host path of the source. */
  abs: string;
  /** Name shown and used for the destination of a file ("dir/a.txt" gives "a.txt"). */
  name: string;
  stat: Stats;
}

export interface Ownership {
  uid: number;
  gid: number;
}

const WILDCARD = /[*?[]/;

function globToRe(pattern: string): RegExp {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith("^") || cls.startsWith("!")) cls = `^${cls.slice(1)}`;
        re += `[${cls}]`;
        i = end;
      }
    } else if (c === "\\" && i + 1 < pattern.length) re += `\\${pattern[++i]}`;
    else re += /[.+^${}()|\]\\]/.test(c) ? `\\${c}` : c;
  }
  return new RegExp(`${re}$`);
}

/** Every path under `root` (relative, "/"-separated), directories before their contents. */
function walkAll(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(rel ? join(root, rel) : root).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      out.push(path);
      if (lstatSync(join(root, path)).isDirectory()) walk(path);
    }
  };
  walk("");
  return out;
}

/** Resolves the source arguments of a COPY/ADD against `root` (the context or a stage's filesystem). */
export function resolveSources(root: string, args: string[], what: string): CopySource[] {
  const out: CopySource[] = [];
  let all: string[] | undefined;
  for (const arg of args) {
    const clean = posix.normalize(`/${arg}`).slice(1);
    if (WILDCARD.test(clean)) {
      all ??= walkAll(root);
      const re = globToRe(clean);
      for (const p of all) {
        if (!re.test(p)) continue;
        // Symlinks resolve inside the root, never to the host's files.
        const abs = resolveInContext(root, p);
        let stat: Stats;
        try {
          stat = statSync(abs);
        } catch {
          continue;
        }
        out.push({ abs, name: basename(p), stat });
      }
      continue;
    }
    const abs = clean ? resolveInContext(root, clean) : root;
    let stat: Stats;
    try {
      stat = statSync(abs);
    } catch {
      throw new BuildError(`${what} failed: file not found in build context or excluded by .dockerignore: stat ${clean || "."}: file does not exist`);
    }
    out.push({ abs, name: clean ? basename(clean) : "", stat });
  }
  if (out.length === 0) throw new BuildError(`${what} failed: no source files were specified`);
  return out;
}

/** sha256 over the sources' paths, modes, link targets and contents (not times, not owners). */
export function checksumSources(sources: CopySource[]): { kind: string; sum: string }[] {
  const buf = Buffer.alloc(1 << 20);
  const hashFile = (h: Bun.CryptoHasher, abs: string) => {
    const fd = openSync(abs, "r");
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        h.update(buf.subarray(0, n));
      }
    } finally {
      closeSync(fd);
    }
  };
  return sources.map((s) => {
    const h = new Bun.CryptoHasher("sha256");
    if (!s.stat.isDirectory()) {
      h.update(`${s.stat.mode}\0`);
      hashFile(h, s.abs);
      return { kind: "file", sum: h.digest("hex") };
    }
    const walk = (dir: string, rel: string) => {
      for (const name of readdirSync(dir).sort()) {
        const abs = join(dir, name);
        const st = lstatSync(abs);
        const path = `${rel}${name}`;
        h.update(`${path}\0${st.mode}\0`);
        if (st.isSymbolicLink()) h.update(`${readlinkSync(abs)}\0`);
        else if (st.isDirectory()) walk(abs, `${path}/`);
        else if (st.isFile()) {
          h.update(`${st.size}\0`);
          hashFile(h, abs);
        }
      }
    };
    walk(s.abs, "");
    return { kind: "dir", sum: h.digest("hex") };
  });
}

/** Docker's history text for the sources: `file:<sum>`, `dir:<sum>` or `multi:<sum>`. */
export function sourcesLabel(sums: { kind: string; sum: string }[]): string {
  if (sums.length === 1) return `${sums[0]!.kind}:${sums[0]!.sum}`;
  return `multi:${new Bun.CryptoHasher("sha256").update(sums.map((s) => `${s.kind}:${s.sum}`).join(",")).digest("hex")}`;
}

export function isArchive(abs: string): boolean {
  const head = Buffer.alloc(512);
  const fd = openSync(abs, "r");
  let n: number;
  try {
    n = readSync(fd, head, 0, 512, 0);
  } finally {
    closeSync(fd);
  }
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return true;
  if (n >= 3 && head.toString("latin1", 0, 3) === "BZh") return true;
  if (n >= 6 && head[0] === 0xfd && head.toString("latin1", 1, 5) === "7zXZ") return true;
  if (n >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return true;
  return n >= 262 && head.toString("latin1", 257, 262) === "ustar";
}

export interface StagingOptions {
  staging: string;
  owner: Ownership | undefined;
  /** --chmod, octal. */
  mode: number | undefined;
  /** Files may be hard-linked (context sources, no --chown/--chmod). */
  link: boolean;
}

/** Writes into the staging directory, at image paths. */
export class Stager {
  constructor(private readonly o: StagingOptions) {}

  private target(imagePath: string): string {
    const rel = posix.normalize(`/${imagePath}`).slice(1);
    return rel ? join(this.o.staging, rel) : this.o.staging;
  }

  /** Creates the directories leading to `imagePath` (root-owned 0755, or the --chown owner). */
  ensureDir(imagePath: string): void {
    const parts = posix.normalize(`/${imagePath}`).split("/").filter(Boolean);
    let cur = this.o.staging;
    for (const p of parts) {
      cur = join(cur, p);
      if (existsSync(cur)) continue;
      mkdirSync(cur, { mode: 0o755 });
      chmodSync(cur, 0o755);
      if (this.o.owner) lchownSync(cur, this.o.owner.uid, this.o.owner.gid);
    }
  }

  private finish(dest: string, st: Stats): void {
    const uid = this.o.owner?.uid ?? 0;
    const gid = this.o.owner?.gid ?? 0;
    lchownSync(dest, uid, gid);
    if (st.isSymbolicLink()) return;
    chmodSync(dest, this.o.mode ?? st.mode & 0o7777);
    utimesSync(dest, st.atime, st.mtime);
  }

  /** One file (or link) at exactly `imagePath`. */
  file(abs: string, st: Stats, imagePath: string): void {
    this.ensureDir(posix.dirname(posix.normalize(`/${imagePath}`)));
    const dest = this.target(imagePath);
    if (existsSync(dest)) throw new BuildError(`cannot copy to ${imagePath}: two sources write the same path`);
    if (st.isSymbolicLink()) {
      symlinkSync(readlinkSync(abs), dest);
      this.finish(dest, st);
      return;
    }
    if (!st.isFile()) return;
    const owned = st.uid === (this.o.owner?.uid ?? 0) && st.gid === (this.o.owner?.gid ?? 0);
    if (this.o.link && owned && this.o.mode === undefined) {
      linkSync(abs, dest);
      return;
    }
    copyFileSync(abs, dest);
    this.finish(dest, st);
  }

  /** The contents of a directory into `imagePath`. */
  dirContents(abs: string, st: Stats, imagePath: string): void {
    this.ensureDir(imagePath);
    const dest = this.target(imagePath);
    for (const name of readdirSync(abs)) {
      const child = join(abs, name);
      const cst = lstatSync(child);
      const childPath = posix.join(imagePath, name);
      if (cst.isDirectory()) this.dirContents(child, cst, childPath);
      else this.file(child, cst, childPath);
    }
    this.finish(dest, st);
  }

  /** Unpacks a local archive (ADD) into `imagePath`. */
  async extract(abs: string, imagePath: string): Promise<void> {
    this.ensureDir(imagePath);
    const p = Bun.spawn(["tar", "-x", "--delay-directory-restore", "-C", this.target(imagePath), "-f", abs], { stdout: "ignore", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new BuildError(`failed to extract ${basename(abs)}: ${err.trim().split("\n")[0]}`);
    if (this.o.owner) {
      const o = this.o.owner;
      const walk = (dir: string) => {
        for (const name of readdirSync(dir)) {
          const c = join(dir, name);
          lchownSync(c, o.uid, o.gid);
          if (lstatSync(c).isDirectory()) walk(c);
        }
      };
      walk(this.target(imagePath));
    }
  }
}
