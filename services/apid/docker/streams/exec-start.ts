/**
 * `POST /exec/{id}/start`: hijacked (docker exec) or plain (Detach, or clients that do
 * not upgrade). The connection ends once the process has exited and its output is
 * drained, and only after the exit code is known, so the client's follow-up inspect
 * sees it. A process that cannot start (missing or non-executable command) is reported
 * as dockerd does (and so is a runtime failure, e.g. a full disk): 200 (or the upgrade), the runtime's error on stdout, end; exec
 * inspect then says ExitCode 126, which the CLI exits with. A detached start: a 400.
 */
import type { Duplex } from "node:stream";
import { ArcboxError } from "../../../../lib/errors.ts";
import { ContainerError } from "../../core/container-error.ts";
import type { ExecBackend } from "../../core/container-backends.ts";
import type { ExecRecord } from "../../core/exec-manager.ts";
import type { HijackContext } from "../hijack.ts";
import { failUpgraded } from "./attach.ts";
import { responseDuplex } from "./response-duplex.ts";
import { parseDetachKeys } from "../../core/detach-keys.ts";
import { connectStdio, endAndDrain, splice, upgradeHeaders } from "./stdio-splice.ts";
import { frame, STDOUT } from "./stream-frames.ts";
import { readUpgradeBody } from "./upgrade-body.ts";
import { headersRead } from "./upgrade-read.ts";

interface StartBody {
  Detach?: boolean;
  Tty?: boolean;
  ConsoleSize?: [number, number] | null;
}

export function parseStartBody(text: string): StartBody {
  if (!text.trim()) return {};
  try {
    return JSON.parse(text) as StartBody;
  } catch (err) {
    throw new ContainerError("invalid_argument", `invalid exec start body: ${(err as Error).message}`);
  }
}

async function pump(execs: ExecBackend, e: ExecRecord, client: Duplex, socketPath: string, head?: Buffer): Promise<void> {
  const stdio = await connectStdio(socketPath);
  const why = await splice(client, stdio, { stdin: e.attachStdin, stdout: e.attachStdout, stderr: e.attachStderr, tty: e.tty, head, detachKeys: parseDetachKeys(e.detachKeys) });
  stdio.destroy();
  if (why === "detached") {
    execs.detached(e.id);
    // dockerd reports the escape on the stream as an attach error (detach keys apply
    // with a TTY only, so the bytes go raw); python3-docker hands it to the caller.
    client.write("exec attach failed: error on attach stdin: read escape sequence\r\n");
  }
  if (why === "eof") {
    // The exit event is usually already on its way; ask the runtime too, take the first.
    void execs.settle(e);
    await e.exited;
  }
  endAndDrain(client);
}

/**
 * The process could not be started once the request was accepted: the command itself
 * (exit 127/126) or the runtime failing (a full disk, an internal error). Docker upgrades
 * first and reports those in the stream; a bad request or a container in the wrong state
 * is still an HTTP error.
 */
function isCommandFailure(err: unknown): boolean {
  return err instanceof ArcboxError && (/exec: "[^"]*": |chdir to cwd /.test(err.message) || err.code === "internal");
}

/** Docker's wording: "OCI runtime exec failed: exec failed: unable to start container process: <reason>: unknown". */
function execFailureMessage(err: Error): string {
  if (err instanceof ArcboxError && err.code === "internal" && !/unable to start container process/.test(err.message)) return `${err.message}\r\n`;
  const reason = err.message.replace(/^.*?unable to start container process: /s, "");
  return `OCI runtime exec failed: exec failed: unable to start container process: ${reason}${reason.endsWith(": unknown") ? "" : ": unknown"}\r\n`;
}

export function hijackExecStart(execs: ExecBackend) {
  return async (ctx: HijackContext) => {
    ctx.socket.pause();
    const e = execs.get(ctx.params.id!);
    const { body, rest } = await readUpgradeBody(ctx);
    const b = parseStartBody(body.toString("utf8"));
    const opts = { detach: !!b.Detach, tty: b.Tty ?? e.tty, consoleSize: b.ConsoleSize ?? undefined };
    if (b.Detach) {
      try {
        await execs.start(e.id, opts);
      } catch (err) {
        throw isCommandFailure(err) ? new ContainerError("invalid_argument", execFailureMessage(err as Error).trimEnd()) : err;
      }
      ctx.socket.end("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    // As dockerd: check, upgrade, then start; what fails from here on is written to the
    // stream. The client has the upgrade's headers before any output, so a client that
    // takes the raw socket after reading them (docker-py) cannot lose the first bytes.
    execs.startable(e.id);
    ctx.socket.write(upgradeHeaders(opts.tty, ctx.apiVersion));
    // Nothing may arrive with the headers: some clients would drop it (upgrade-read.ts).
    await headersRead(ctx.socket);
    let socketPath: string;
    try {
      socketPath = await execs.start(e.id, opts);
    } catch (err) {
      if (!isCommandFailure(err)) return failUpgraded(ctx.socket, opts.tty, err);
      const msg = new TextEncoder().encode(execFailureMessage(err as Error));
      ctx.socket.end(opts.tty ? msg : frame(STDOUT, msg));
      return;
    }
    await pump(execs, e, ctx.socket, socketPath, rest).catch((err) => failUpgraded(ctx.socket, e.tty, err));
  };
}

export async function plainExecStart(execs: ExecBackend, id: string, bodyText: string): Promise<Response> {
  const e = execs.get(id);
  const b = parseStartBody(bodyText);
  let socketPath: string;
  try {
    socketPath = await execs.start(e.id, { detach: !!b.Detach, tty: b.Tty ?? e.tty, consoleSize: b.ConsoleSize ?? undefined });
  } catch (err) {
    if (!isCommandFailure(err)) throw err;
    // dockerd: a detached start returns the error (400, an invalid config); an attached one
    // has already switched to the stream and writes the error there, after a 200.
    if (b.Detach) throw new ContainerError("invalid_argument", execFailureMessage(err as Error).trimEnd());
    const msg = new TextEncoder().encode(execFailureMessage(err as Error));
    return new Response(e.tty ? msg : frame(STDOUT, msg), { headers: { "Content-Type": e.tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream" } });
  }
  if (b.Detach) return new Response(null, { status: 200 });
  const { duplex, body } = responseDuplex();
  e.attachStdin = false;
  void pump(execs, e, duplex, socketPath).catch(() => duplex.destroy());
  return new Response(body, { headers: { "Content-Type": e.tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream" } });
}
