/**
 * docker cp's filesystem work, done by native/bin/arcbox-rootfs-cp (on the host, or in
 * the engine machine in VM mode: core/rootfs-helper.ts) from inside the
 * container's root: the helper chroots into it (a running container's /proc/<pid>/root,
 * or a stopped one's overlay and volumes mounted in a mount namespace of its own) before
 * it touches any path, so the kernel resolves every symlink and `..` inside the root
 * and no race with the container can lead a copy to a host file. Resolving and opening
 * are one step there; nothing here ever names a container path on the host.
 *
 * Protocol: the helper answers one JSON line (a stat or {error, message}), followed for
 * `get` by the tar stream; `put` reads the tar on stdin and answers when done.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { z } from "zod";
import type { ErrorCode } from "../../../lib/errors.ts";
import { ContainerError } from "./container-error.ts";
import type { ContainerRecord } from "./container-record.ts";
import type { HelperOp, HelperRun, RootfsHelpers } from "./rootfs-helper.ts";

const statSchema = z.object({ mode: z.number(), size: z.number(), mtime: z.number(), mtimeNsec: z.number(), linkTarget: z.string() });
const errorSchema = z.object({ error: z.string(), message: z.string() });
export type PathStat = z.infer<typeof statSchema>;

const KINDS: Record<string, ErrorCode> = { not_found: "not_found", invalid_argument: "invalid_argument", conflict: "conflict" };

/**
 * Docker's container path: relative paths start at the working directory, the result is
 * cleaned (`..` stops at `/`), and a trailing "/" or "/." is kept (it follows a final link).
 */
export function containerPath(path: string, workingDir: string): string {
  if (!path) throw new ContainerError("invalid_argument", "bad parameter: 'path' cannot be empty");
  const abs = path.startsWith("/") ? path : `/${workingDir || ""}/${path}`;
  const parts: string[] = [];
  for (const p of abs.split("/")) {
    if (p === "" || p === ".") continue;
    if (p === "..") parts.pop();
    else parts.push(p);
  }
  const clean = `/${parts.join("/")}`;
  if (path.endsWith("/.") || path === ".") return clean === "/" ? "/." : `${clean}/.`;
  if (path.endsWith("/") && clean !== "/") return `${clean}/`;
  return clean;
}

export interface CopyTarget {
  rec: ContainerRecord;
  /** The path as the client gave it (for messages). */
  path: string;
  /** data/apid/tmp: the stopped container's overlay is mounted there, in the helper's own mount namespace. */
  tmpBase: string;
  /** Where the helper runs: on the host, or in the engine machine (core/rootfs-helper.ts). */
  helpers: RootfsHelpers;
}

function helperError(t: CopyTarget, line: string, fallback: string): ContainerError {
  const parsed = errorSchema.safeParse(
    (() => {
      try {
        return JSON.parse(line);
      } catch {
        return undefined;
      }
    })(),
  );
  if (!parsed.success) return new ContainerError("internal", `docker cp helper failed${fallback ? `: ${fallback}` : ""}`);
  const { error, message } = parsed.data;
  if (error === "not_found") return new ContainerError("not_found", `Could not find the file ${t.path} in container ${t.rec.name.slice(1)}`);
  return new ContainerError(KINDS[error] ?? "internal", message);
}

function startHelper(t: CopyTarget, op: HelperOp, flags: string[], writable: boolean): HelperRun {
  const path = containerPath(t.path, t.rec.config.WorkingDir ?? "");
  return t.helpers.run({ rec: t.rec, op, path, flags, writable, tmpBase: t.tmpBase });
}

/** Splits the answer line off the helper's stdout; `rest` is what followed it. */
async function answerLine(reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> }): Promise<{ line: string; rest: Uint8Array | undefined }> {
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done || !value) return { line: Buffer.concat(chunks).toString(), rest: undefined };
    const nl = value.indexOf(10);
    if (nl < 0) {
      chunks.push(value);
      continue;
    }
    chunks.push(value.subarray(0, nl));
    return { line: Buffer.concat(chunks).toString(), rest: nl + 1 < value.length ? value.subarray(nl + 1) : undefined };
  }
}

function parseStat(t: CopyTarget, line: string, stderr: string): PathStat {
  const parsed = statSchema.safeParse(
    (() => {
      try {
        return JSON.parse(line);
      } catch {
        return undefined;
      }
    })(),
  );
  if (!parsed.success) throw helperError(t, line, stderr.trim());
  return parsed.data;
}

/** HEAD /archive: the path's lstat (a final link is not followed unless the path ends in "/"). */
export async function statPath(t: CopyTarget): Promise<PathStat> {
  const p = startHelper(t, "stat", [], false);
  p.stdin.end();
  // The answer is complete when stdout ends; the exit status adds nothing.
  const out = await new Response(p.stdout).text();
  const line = out.split("\n")[0] ?? "";
  return parseStat(t, line, line ? "" : await p.stderr());
}

/**
 * Runs a helper that answers a line and then streams a tar: `parse` checks the line
 * (throwing kills the helper); cancelling the stream kills it too.
 */
export async function answeredTar<T>(p: HelperRun, parse: (line: string, stderr: () => Promise<string>) => T): Promise<{ answer: T; tar: ReadableStream<Uint8Array> }> {
  p.stdin.end();
  const reader = p.stdout.getReader();
  const { line, rest } = await answerLine(reader);
  let answer: T;
  try {
    answer = parse(line, () => p.stderr());
  } catch (err) {
    p.kill();
    await p.exited;
    throw err;
  }
  let first = rest;
  const tar = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      if (first) {
        ctrl.enqueue(first);
        first = undefined;
        return;
      }
      const { done, value } = await reader.read();
      if (value) ctrl.enqueue(value);
      if (done) {
        const code = await p.exited;
        if (code !== 0) ctrl.error(new ContainerError("internal", `docker cp helper exited with ${code}: ${(await p.stderr()).trim()}`));
        else ctrl.close();
      }
    },
    async cancel() {
      p.kill();
      await p.exited;
    },
  });
  return { answer, tar };
}

/** GET /archive: the stat and a tar stream of the path. */
export async function archivePath(t: CopyTarget): Promise<{ stat: PathStat; tar: ReadableStream<Uint8Array> }> {
  let stat: PathStat | undefined;
  const { tar } = await answeredTar(startHelper(t, "get", [], false), (line) => (stat = parseStat(t, line, "")));
  return { stat: stat!, tar };
}

/** docker export: the container's root filesystem alone (no volumes, nothing mounted in it). */
export async function exportRoot(rec: ContainerRecord, tmpBase: string, helpers: RootfsHelpers): Promise<ReadableStream<Uint8Array>> {
  const t = { rec, path: "/", tmpBase, helpers };
  const { tar } = await answeredTar(startHelper(t, "export", [], false), (line) => {
    if (line !== '{"ok":true}') throw helperError(t, line, "");
  });
  return tar;
}

/**
 * PUT /archive: unpacks `body` into the directory at the path (a final link followed).
 * If the body fails (the client went away mid-upload), the helper is killed and reaped
 * at once; its mounts die with its mount namespace.
 */
export async function extractToDir(t: CopyTarget, body: ReadableStream<Uint8Array> | null, opts: { noOverwriteDirNonDir: boolean; copyUIDGID: boolean }): Promise<void> {
  const extra = [...(opts.noOverwriteDirNonDir ? ["--no-overwrite-dir-non-dir"] : []), ...(opts.copyUIDGID ? ["--copy-uidgid"] : [])];
  const child = startHelper(t, "put", extra, true);
  const out = new Response(child.stdout).text();
  let bodyFailed = false;
  const fed = body
    ? pipeline(Readable.fromWeb(body as NodeReadableStream<Uint8Array>), child.stdin).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "EPIPE" || e.code === "ERR_STREAM_DESTROYED") return; // the helper stopped reading: its answer says why
        bodyFailed = true;
        child.kill();
      })
    : (child.stdin.end(), Promise.resolve());
  try {
    // Not waiting for `fed`: a stalled client must not hold an answer the helper has given.
    const code = await child.exited;
    void fed;
    if (bodyFailed) throw new ContainerError("canceled", "the upload ended before the archive did");
    if (code !== 0) throw helperError(t, (await out).split("\n")[0] ?? "", (await child.stderr()).trim());
  } finally {
    child.kill();
    await child.exited;
  }
}

/**
 * docker commit and build's RUN: the writable layer as a tar file (in `tmpDir`) for
 * imaged, where the backend makes it (VM mode: in the engine machine, whose disk holds
 * the upper dir); undefined when imaged reads the host's upper dir itself. The caller
 * removes the file.
 */
export async function spoolLayerTar(helpers: RootfsHelpers, rec: ContainerRecord, tmpDir: string): Promise<string | undefined> {
  const p = helpers.layerTar(rec);
  if (!p) return undefined;
  const { tar } = await answeredTar(p, (line) => {
    if (line === '{"ok":true}') return;
    let parsed: ReturnType<typeof errorSchema.safeParse> | undefined;
    try {
      parsed = errorSchema.safeParse(JSON.parse(line));
    } catch {}
    throw new ContainerError("internal", `reading the container's layer in the engine machine failed: ${parsed?.success ? parsed.data.message : line || "no answer"}`);
  });
  mkdirSync(tmpDir, { recursive: true, mode: 0o700 });
  const path = join(tmpDir, `commit-${rec.id.slice(0, 12)}-${randomBytes(4).toString("hex")}.tar`);
  try {
    await Bun.write(path, new Response(tar));
  } catch (err) {
    rmSync(path, { force: true });
    throw err;
  }
  return path;
}
