/**
 * The build context: the request body (a tar, maybe gzip/bzip2/xz-compressed) is
 * streamed into GNU tar, which unpacks it into a private directory as it arrives, so
 * apid never holds the context in memory. Then .dockerignore is applied (the CLI
 * already filters, raw API clients may not), and the Dockerfile is read.
 */
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
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

/** Unpacks the context stream into a new directory under `tmpBase`. */
export async function receiveContext(body: ReadableStream<Uint8Array> | null, tmpBase: string): Promise<string> {
  mkdirSync(tmpBase, { recursive: true, mode: 0o700 });
  const dir = mkdtempSync(join(tmpBase, "context-"));
  if (!body) return dir;
  const reader = body.getReader();
  let first = await reader.read();
  while (!first.done && first.value.length === 0) first = await reader.read();
  if (first.done) return dir;
  // Owned by root and modes kept: COPY hard-links unchanged files into its layer.
  const tar = Bun.spawn(["tar", "-x", "--no-same-owner", "--delay-directory-restore", ...compressionFlag(first.value), "-C", dir, "-f", "-"], { stdin: "pipe", stdout: "ignore", stderr: "pipe" });
  const errText = new Response(tar.stderr).text();
  try {
    tar.stdin.write(first.value);
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      tar.stdin.write(r.value);
      await tar.stdin.flush();
    }
    await tar.stdin.end();
  } catch (err) {
    tar.kill();
    await tar.exited;
    rmSync(dir, { recursive: true, force: true });
    throw new BuildError(`failed to read the build context: ${(err as Error).message}`);
  }
  const code = await tar.exited;
  if (code !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new BuildError(`the build context is not a valid tar archive: ${(await errText).trim().split("\n")[0]}`);
  }
  return dir;
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

export async function openContext(body: ReadableStream<Uint8Array> | null, tmpBase: string, dockerfilePath: string): Promise<BuildContext> {
  const dir = await receiveContext(body, tmpBase);
  const dispose = () => rmSync(dir, { recursive: true, force: true });
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
