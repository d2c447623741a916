/**
 * Joins a client connection (hijacked HTTP socket or streamed response) with the
 * runtime's stdio socket for a container or exec. The stdio socket already speaks
 * Docker's framing (raw with a TTY, multiplexed without), so output is passed through
 * as is; client bytes become stdin, and the client's half-close closes stdin.
 */
import type { Duplex } from "node:stream";
import { connectUnix } from "./unix-connect.ts";
import { compareVersions } from "../api-version.ts";
import { FrameFilter } from "./stream-frames.ts";

/** Connects to a runtime stdio socket (see unix-connect.ts for why not node:net). */
export async function connectStdio(path: string): Promise<Duplex> {
  return connectUnix(path);
}

export interface SpliceOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
  /** Bytes the client sent after its request headers. */
  head?: Buffer;
  /** Key sequence that detaches (with a TTY, as Docker): the session ends, the process runs on. */
  detachKeys?: Uint8Array;
  /** Output without Docker's stream headers even without a TTY (WebSocket attach). */
  demux?: boolean;
}

/**
 * Pipes client <-> stdio until the output ends (process exited) or the client goes.
 * Resolves with why it ended.
 */
export function splice(client: Duplex, stdio: Duplex, opts: SpliceOptions): Promise<"eof" | "client-closed" | "detached"> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (why: "eof" | "client-closed" | "detached") => {
      if (settled) return;
      settled = true;
      client.off("data", onClientData);
      resolve(why);
    };
    const filter = !opts.tty && (opts.demux || !opts.stdout || !opts.stderr) ? new FrameFilter((s) => (s === 1 ? opts.stdout : s === 2 ? opts.stderr : false), opts.demux) : undefined;
    stdio.on("data", (chunk: Buffer) => {
      if (!opts.stdout && !opts.stderr) return;
      const parts = filter ? filter.push(chunk) : [chunk];
      for (const p of parts) if (!client.write(p)) stdio.pause(), client.once("drain", () => stdio.resume());
    });
    stdio.once("end", () => finish("eof"));
    stdio.once("close", () => finish("eof"));
    stdio.on("error", () => finish("eof"));

    const keys = opts.detachKeys;
    let matched = 0;
    const onClientData = (chunk: Buffer) => {
      if (!opts.stdin) return;
      if (keys && opts.tty) {
        for (let i = 0; i < chunk.length; i++) {
          if (chunk[i] === keys[matched]) {
            if (++matched === keys.length) {
              const before = chunk.subarray(0, i + 1 - keys.length);
              if (before.length > 0) stdio.write(before);
              stdio.destroy();
              return finish("detached");
            }
          } else matched = chunk[i] === keys[0] ? 1 : 0;
        }
      }
      if (!stdio.write(chunk)) client.pause(), stdio.once("drain", () => client.resume());
    };
    if (opts.head?.length) onClientData(opts.head);
    client.on("data", onClientData);
    client.once("end", () => {
      // Half-close: the client finished sending stdin; output continues. As in Docker, a
      // TTY's input is not closed by it (a client going away must not end the shell).
      if (opts.stdin && !opts.tty) stdio.end();
      else if (!opts.stdout && !opts.stderr) finish("client-closed");
    });
    client.once("close", () => {
      if (!settled) stdio.destroy();
      finish("client-closed");
    });
    client.on("error", () => finish("client-closed"));
    // The hijack handlers pause the client until here; an explicit pause needs an explicit resume.
    client.resume();
  });
}

/**
 * The stream's media type: raw with a TTY; without one multiplexed from API 1.42, raw
 * before (dockerd labelled the same framed bytes raw-stream for those clients).
 */
export function streamType(tty: boolean, apiVersion: string): string {
  return tty || compareVersions(apiVersion, "1.42") < 0 ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream";
}

export function upgradeHeaders(tty: boolean, apiVersion: string): string {
  return `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${streamType(tty, apiVersion)}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`;
}

/**
 * Ends a hijacked connection once its output is complete, but keeps reading (and
 * dropping) whatever the client still sends until it closes. Closing a socket with
 * unread input resets the connection, and the client then loses output it has not
 * read yet (`docker exec -it` forwards the terminal's ^D just as the process exits).
 */
export function endAndDrain(client: Duplex, timeoutMs = 5_000): void {
  client.on("data", () => {});
  client.on("error", () => {});
  client.resume();
  client.end();
  const timer = setTimeout(() => client.destroy(), timeoutMs);
  client.once("close", () => clearTimeout(timer));
}
