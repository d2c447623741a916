/**
 * `POST /containers/{id}/attach`: hijacked (Upgrade: tcp) or as a streamed response.
 * Replays the log first with `logs=1`, then joins the container's stdio now if it runs,
 * or when it starts (docker run attaches before it starts the container).
 */
import type { Duplex } from "node:stream";
import type { ContainerAttachBackend } from "../../core/container-backends.ts";
import type { ContainerRecord } from "../../core/container-record.ts";
import type { HijackContext } from "../hijack.ts";
import { LogReader } from "./log-reader.ts";
import { frame, STDERR } from "./stream-frames.ts";
import { responseDuplex } from "./response-duplex.ts";
import { ContainerError } from "../../core/container-error.ts";
import { parseDetachKeys } from "../../core/detach-keys.ts";
import { connectStdio, endAndDrain, splice, streamType, upgradeHeaders } from "./stdio-splice.ts";
import { readUpgradeBody } from "./upgrade-body.ts";
import { acceptHandshake, handshakeResponse, WebSocketDuplex, WebSocketHandshakeError } from "./websocket.ts";
import { compareVersions } from "../api-version.ts";
import { headersRead } from "./upgrade-read.ts";

const flag = (q: URLSearchParams, k: string) => ["1", "true", "True"].includes(q.get(k) ?? "");

interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  logs: boolean;
  stream: boolean;
  detachKeys?: Uint8Array;
  /** The output without Docker's stream headers even without a TTY (a WebSocket's messages). */
  demux: boolean;
}

/** dockerd's ContainerAttach refuses a paused or restarting container (naming it as asked). */
function checkAttachable(rec: ContainerRecord, ref: string): void {
  if (rec.state.status === "paused") throw new ContainerError("conflict", `container ${ref} is paused, unpause the container before attach`);
  if (rec.state.status === "restarting") throw new ContainerError("conflict", `container ${ref} is restarting, wait until the container is running`);
}

/** The container an attach names, checked, and the session's options from the query. */
function attachRequest(containers: ContainerAttachBackend, ref: string, q: URLSearchParams): { rec: ContainerRecord; opts: AttachOptions } {
  const rec = containers.get(ref);
  checkAttachable(rec, ref);
  const detachKeys = parseDetachKeys(q.get("detachKeys"));
  if (!detachKeys) throw new ContainerError("invalid_argument", `Invalid detach keys (${q.get("detachKeys")}) provided`);
  const opts = {
    stdin: flag(q, "stdin") && !!rec.config.OpenStdin,
    stdout: flag(q, "stdout"),
    stderr: flag(q, "stderr"),
    logs: flag(q, "logs"),
    stream: flag(q, "stream"),
    detachKeys,
    demux: false,
  };
  return { rec, opts };
}

/** Writes the replay; stops early (its reader released) once the client is gone. */
async function writeAll(client: Duplex, stream: ReadableStream<Uint8Array>): Promise<void> {
  for await (const chunk of stream) {
    if (client.destroyed) return;
    if (!client.write(chunk)) {
      await new Promise<void>((r) => {
        const done = () => {
          client.off("drain", done).off("close", done);
          r();
        };
        client.once("drain", done).once("close", done);
      });
    }
  }
}

/** Runs an attach session on `client`; ends the client when output ends. */
async function runAttach(containers: ContainerAttachBackend, rec: ContainerRecord, client: Duplex, opts: AttachOptions, head?: Buffer): Promise<void> {
  const tty = !!rec.config.Tty;
  if (opts.logs) await headersRead(client);
  if (opts.logs) await writeAll(client, new LogReader(rec.logPath, { stdout: opts.stdout, stderr: opts.stderr, timestamps: false, raw: tty || opts.demux }).stream(undefined));
  if (!opts.stream) {
    client.end();
    return;
  }
  containers.whenStdio(rec, async (socketPath) => {
    if (!socketPath) return void client.end();
    const stdio = await connectStdio(socketPath);
    // Output only once the client has read the upgrade's headers (upgrade-read.ts); a
    // container starting with this attach waits for that, so its first bytes are kept.
    await headersRead(client);
    // dockerd ends an attach session once the client closes its stdin (the container keeps
    // running, its stdin open for others); only StdinOnce closes the container's stdin.
    if (opts.stdin && !rec.config.StdinOnce) client.once("end", () => stdio.destroy());
    void splice(client, stdio, { ...opts, tty, head }).then((why) => {
      if (why === "detached") containers.emit(rec, "detach");
      if (why === "eof" || why === "detached") endAndDrain(client);
      stdio.destroy();
    });
  });
}

/** After the 101 no HTTP error can be sent: the error goes to stderr, then the stream ends. */
export function failUpgraded(client: Duplex, tty: boolean, err: unknown): void {
  const msg = new TextEncoder().encode(`Error: ${(err as Error)?.message ?? String(err)}\n`);
  client.end(tty ? msg : frame(STDERR, msg));
}

export function hijackAttach(containers: ContainerAttachBackend) {
  return async (ctx: HijackContext) => {
    // Paused until the stdio join: stdin sent early (docker run -i) is kept, not dropped.
    ctx.socket.pause();
    const { rec, opts } = attachRequest(containers, ctx.params.id!, ctx.query);
    const { rest } = await readUpgradeBody(ctx);
    ctx.socket.write(upgradeHeaders(!!rec.config.Tty, ctx.apiVersion));
    containers.emit(rec, "attach");
    await runAttach(containers, rec, ctx.socket, opts, rest).catch((err) => failUpgraded(ctx.socket, !!rec.config.Tty, err));
  };
}

/**
 * `GET /containers/{id}/attach/ws`: the same session over a WebSocket, as dockerd runs
 * it: stdin from the client's messages, output as messages (binary frames from API
 * 1.28, text before), never multiplexed.
 */
export function hijackAttachWs(containers: ContainerAttachBackend) {
  return async (ctx: HijackContext) => {
    ctx.socket.pause();
    const { rec, opts } = attachRequest(containers, ctx.params.id!, ctx.query);
    opts.demux = true;
    // Before API 1.42 dockerd attached every stream whatever the query said.
    if (compareVersions(ctx.apiVersion, "1.42") < 0) Object.assign(opts, { stdin: !!rec.config.OpenStdin, stdout: true, stderr: true });
    let accept: string;
    try {
      accept = acceptHandshake(ctx.req);
    } catch (err) {
      if (err instanceof WebSocketHandshakeError) throw new ContainerError("invalid_argument", err.message);
      throw err;
    }
    ctx.socket.write(handshakeResponse(accept));
    await headersRead(ctx.socket);
    if (ctx.socket.destroyed) return;
    const ws = new WebSocketDuplex(ctx.socket, compareVersions(ctx.apiVersion, "1.28") >= 0, ctx.head);
    ws.on("error", () => ws.destroy());
    ws.pause();
    containers.emit(rec, "attach");
    // After the 101 an error can only end the session: a close frame, no HTTP answer.
    await runAttach(containers, rec, ws, opts).catch(() => ws.end());
  };
}

/** The non-upgraded variant: output only, as the response body. */
export function streamedAttach(containers: ContainerAttachBackend, id: string, q: URLSearchParams, apiVersion: string): Response {
  const { rec, opts } = attachRequest(containers, id, q);
  opts.stdin = false;
  const { duplex, body } = responseDuplex();
  containers.emit(rec, "attach");
  void runAttach(containers, rec, duplex, opts).catch(() => duplex.destroy());
  return new Response(body, { headers: { "Content-Type": streamType(!!rec.config.Tty, apiVersion) } });
}
