/**
 * The build context: the request body (a tar, maybe gzip/bzip2/xz-compressed) is
 * streamed into GNU tar, which unpacks it into a private directory as it arrives, so
 * apid never holds the context in memory. Then .dockerignore is applied (the CLI
 * already filters, raw API clients may not), and the Dockerfile is read.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { BuildError } from "./errors.ts";
import { IgnoreMatcher } from "./dockerignore.ts";
import { resolveInContext } from "./context-paths.ts";

export interface BuildContext {
  dir: string;
  dockerfile: string;
  /** Context paths excluded by .dockerignore (already removed from `dir`). */
  ignore: IgnoreMatcher;
  dispose(): void;
}

function compressionFlag(head: Uint8Array): string[] {
  if (head[0] === 0x1f && head[1] === 0x8b) return ["-z"];
  if (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) return ["-j"];
  if (head[0] === 0xfd && head[1] === 0x37 && head[2] === 0x7a && head[3] === 0x58) return ["-J"];
  return [];
}

/** Contexts up to this size are unpacked on tmpfs (file creation on disk is slow). */
export const FAST_CONTEXT_LIMIT = 128 << 20;

export interface ContextBases {
  /** Private directory on disk. */
  disk: string;
  /** Private directory on tmpfs, if there is one. */
  fast: string | undefined;
}

/**
 * Receives the context stream into a spool file on disk (sequential writes, nothing held
 * in memory), then unpacks it with GNU tar: on tmpfs when it is small, else on disk.
 */
export async function receiveContext(body: ReadableStream<Uint8Array> | null, bases: ContextBases): Promise<string> {
  mkdirSync(bases.disk, { recursive: true, mode: 0o700 });
  const spool = join(bases.disk, `spool-${crypto.randomUUID()}`);
  const sink = Bun.file(spool).writer({ highWaterMark: 1 << 20 });
  let size = 0;
  let head: Uint8Array | undefined;
  try {
    if (body) {
      for await (const chunk of body) {
        if (!chunk.length) continue;
        head ??= chunk.slice(0, 16);
        size += chunk.length;
        sink.write(chunk);
        await sink.flush();
      }
    }
    await sink.end();
  } catch (err) {
    await Promise.resolve(sink.end()).catch(() => {});
    rmSync(spool, { force: true });
    throw new BuildError(`failed to read the build context: ${(err as Error).message}`);
  }
  const base = bases.fast && size <= FAST_CONTEXT_LIMIT ? bases.fast : bases.disk;
  mkdirSync(base, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(join(base, "context-"));
  try {
    if (!head) return dir;
    // Owned by root and modes kept: COPY hard-links unchanged files into its layer.
    const tar = Bun.spawn(["tar", "-x", "--no-same-owner", "--delay-directory-restore", ...compressionFlag(head), "-C", dir, "-f", spool], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    const [errText, code] = await Promise.all([new Response(tar.stderr).text(), tar.exited]);
    if (code !== 0) {
      rmSync(dir, { recursive: true, force: true });
      throw new BuildError(`the build context is not a valid tar archive: ${errText.trim().split("\n")[0]}`);
    }
    return dir;
  } finally {
    rmSync(spool, { force: true });
  }
}

/** Removes what .dockerignore excludes; a directory with no possible exception goes whole. */
function applyIgnore(dir: string, m: IgnoreMatcher, keep: Set<string>): void {
  const walk = (rel: string) => {
    for (const name of readdirSync(rel ? join(dir, rel) : dir)) {
      const path = rel ? `${rel}/${name}` : name;
      const abs = join(dir, path);
      const st = lstatSync(abs);
      const excluded = m.matches(path) && !keep.has(path);
      if (st.isDirectory()) {
        if (excluded && !m.hasExceptions) rmSync(abs, { recursive: true, force: true });
        else {
          walk(path);
          if (excluded && readdirSync(abs).length === 0) rmSync(abs, { recursive: true, force: true });
        }
      } else if (excluded) rmSync(abs, { force: true });
    }
  };
  walk("");
}

export async function openContext(body: ReadableStream<Uint8Array> | null, bases: ContextBases, dockerfilePath: string): Promise<BuildContext> {
  const dir = await receiveContext(body, bases);
  // Deleting thousands of files takes seconds on ext4: done off the event loop.
  const dispose = () => void rm(dir, { recursive: true, force: true }).catch(() => {});
  try {
    const name = dockerfilePath || "Dockerfile";
    const path = resolveInContext(dir, name);
    let file = path;
    if (!existsSync(file) && !dockerfilePath && existsSync(join(dir, "dockerfile"))) file = join(dir, "dockerfile");
    if (!existsSync(file) || !lstatSync(file).isFile()) throw new BuildError(`Cannot locate specified Dockerfile: ${name}`);
    const dockerfile = readFileSync(file, "utf8");
    const ignorePath = join(dir, ".dockerignore");
    const ignore = existsSync(ignorePath) ? IgnoreMatcher.parse(readFileSync(ignorePath, "utf8")) : new IgnoreMatcher([]);
    if (ignore.patterns.length) applyIgnore(dir, ignore, new Set());
    return { dir, dockerfile, ignore, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}

/** Removes what a crashed daemon left in the build directory (contexts, staged layers). */
export function cleanStale(tmpBase: string): void {
  let names: string[];
  try {
    names = readdirSync(tmpBase);
  } catch {
    return;
  }
  for (const n of names) if (/^(context|layer|empty|spool)-/.test(n)) void rm(join(tmpBase, n), { recursive: true, force: true }).catch(() => {});
}
