/**
 * A call to another service that fails in the transport (the process died, its socket
 * is gone, the connection was reset mid-stream) becomes a Connect `Unavailable` error
 * that names the service and says what happened, instead of the socket error's own
 * text ("ECONNRESET: The socket connection was closed unexpectedly…").
 */
import { Code, ConnectError } from "@connectrpc/connect";

/** Errors of a connection that never opened: the service is not listening. */
const NOT_LISTENING = new Set(["ENOENT", "ECONNREFUSED", "FailedToOpenSocket", "ConnectionRefused"]);
/** Errors of a connection that broke during the call: the service went away. */
const BROKEN = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ConnectionClosed", "UND_ERR_SOCKET"]);

const ROLES: Record<string, string> = {
  imaged: "image service",
  netd: "network service",
  fsd: "volume service",
  vmm: "machine service",
  apid: "API service",
  supervisor: "supervisor",
};

const codeOf = (err: unknown): string | undefined => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
};

/** Whether the connection to the service could not be opened (activation may help). */
export function isNotListening(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && NOT_LISTENING.has(code);
}

/** "the image service (imaged)" for a known service, else its name. */
export function describeService(service: string): string {
  const role = ROLES[service];
  return role ? `the ${role} (${service})` : service;
}

/**
 * The Unavailable error for a transport failure, or undefined for any other error.
 * `activated`: whether the supervisor was asked to start the service first.
 */
export function transportError(service: string, err: unknown, activated = false): ConnectError | undefined {
  const code = codeOf(err);
  if (code === undefined) return undefined;
  if (NOT_LISTENING.has(code))
    return new ConnectError(`${describeService(service)} is not running${activated ? " and could not be started" : ""}; try again`, Code.Unavailable, undefined, undefined, err);
  if (BROKEN.has(code)) return new ConnectError(`${describeService(service)} stopped unexpectedly; try again`, Code.Unavailable, undefined, undefined, err);
  return undefined;
}
