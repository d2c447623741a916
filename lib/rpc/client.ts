/**
 * Connect clients over Unix sockets, using Bun's fetch with its `unix` option.
 *
 * Lazy services are activated on first use: when the socket is missing or refuses
 * the connection, the client asks the supervisor to start the service and retries.
 * A connection that fails for good, or breaks mid-call, is a Connect `Unavailable`
 * error naming the service (`transport-errors.ts`).
 */
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { createFetchClient } from "@connectrpc/connect/protocol";
import { basename } from "node:path";
import { isNotListening, transportError } from "./transport-errors.ts";

export type Activator = () => Promise<void>;

const ACTIVATION_ATTEMPTS = 8;

/** The service behind a socket, for messages: `run/imaged.sock` is "imaged". */
const serviceOfSocket = (socketPath: string) => basename(socketPath).replace(/\.sock$/, "");

/** Passes a response body through, turning a connection lost mid-stream into `Unavailable`. */
function mapBodyErrors(res: Response, service: string): Response {
  if (!res.body) return res;
  const reader = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      try {
        const r = await reader.read();
        if (r.done) ctrl.close();
        else ctrl.enqueue(r.value);
      } catch (err) {
        ctrl.error(transportError(service, err) ?? err);
      }
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}

export function unixTransport(socketPath: string, activate?: Activator): Transport {
  const service = serviceOfSocket(socketPath);
  const unixFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    // Buffer the (unary or single-message) body so a retry after activation can resend it.
    const body = request.body ? await request.arrayBuffer() : undefined;
    // No keep-alive: an idle pooled connection makes both the client's HTTP thread and the
    // server's loop wake every second or so. A Unix-socket connect per call costs ~50 µs.
    const headers = new Headers(request.headers);
    headers.set("Connection", "close");
    const send = () => fetch(request.url, { method: request.method, headers, body, signal: request.signal, unix: socketPath, keepalive: false } as RequestInit);
    // A lazy service may be between an idle exit and the supervisor hearing of it: then
    // activation returns at once and the socket is still gone, so try a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        return mapBodyErrors(await send(), service);
      } catch (err) {
        if (!activate || !isNotListening(err) || attempt >= ACTIVATION_ATTEMPTS) throw transportError(service, err, attempt > 0) ?? err;
        if (attempt > 0) await Bun.sleep(10 * attempt);
        await activate();
      }
    }
  };
  return createTransport({
    baseUrl: "http://arcbox.local",
    httpClient: createFetchClient(unixFetch as typeof fetch),
    useBinaryFormat: true,
    interceptors: [],
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: Number.MAX_SAFE_INTEGER,
    readMaxBytes: 0xffffffff,
    writeMaxBytes: 0xffffffff,
  });
}

export function unixClient<T extends DescService>(service: T, socketPath: string, activate?: Activator): Client<T> {
  return createClient(service, unixTransport(socketPath, activate));
}
