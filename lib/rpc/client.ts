/**
 * Connect clients over Unix sockets, using Bun's fetch with its `unix` option.
 *
 * Lazy services are activated on first use: when the socket is missing or refuses
 * the connection, the client asks the supervisor to start the service and retries.
 */
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { createFetchClient } from "@connectrpc/connect/protocol";

export type Activator = () => Promise<void>;

const ACTIVATION_ATTEMPTS = 8;

const connectionErrors = new Set(["ENOENT", "ECONNREFUSED", "FailedToOpenSocket", "ConnectionRefused"]);

export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return typeof code === "string" && connectionErrors.has(code);
}

export function unixTransport(socketPath: string, activate?: Activator): Transport {
  const unixFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = input instanceof Request ? input : new Request(String(input), init);
    // Buffer the (unary or single-message) body so a retry after activation can resend it.
    const body = request.body ? await request.arrayBuffer() : undefined;
    const send = () => fetch(request.url, { method: request.method, headers: request.headers, body, signal: request.signal, unix: socketPath } as RequestInit);
    // A lazy service may be between an idle exit and the supervisor hearing of it: then
    // activation returns at once and the socket is still gone, so try a few times.
    for (let attempt = 0; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (!activate || !isConnectionError(err) || attempt >= ACTIVATION_ATTEMPTS) throw err;
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
