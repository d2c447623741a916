/**
 * Waits until the client of a hijacked connection has read what was sent so far (the
 * 101 headers) before any output follows them. Clients that read the headers through a
 * buffer and then take the raw socket (python3-docker's exec_run, docker-modem, which
 * drops the upgrade's `head`) lose whatever arrived with the headers: under load an exec
 * printed `hello err` but not `hello out`. dockerd has the same window; ArcBox closes it.
 *
 * The kernel says when the peer has read everything (SIOCOUTQ drops to 0), but no event
 * reports it: this checks with a short backoff (1, 2, 4 ... 50 ms), only while a client
 * has not read its headers yet, and gives up after a bound (the stream then goes on).
 */
import type { Duplex } from "node:stream";
import { unreadByPeer } from "../../../../native/libc.ts";

const MAX_WAIT_MS = 5_000;

/** The socket's descriptor (node:net sockets of the Docker server), if it has one. */
function socketFd(socket: Duplex): number | undefined {
  const fd = (socket as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : undefined;
}

export async function headersRead(socket: Duplex): Promise<void> {
  const fd = socketFd(socket);
  if (fd === undefined) return;
  const started = Date.now();
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    // A closed socket's descriptor may already belong to another connection: stop first.
    if (socket.destroyed || (socket.writableLength === 0 && unreadByPeer(fd) <= 0)) return;
    if (Date.now() - started > MAX_WAIT_MS) return;
    await Bun.sleep(delay);
  }
}
