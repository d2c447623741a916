/**
 * Docker-style error bodies (`{"message": ...}`) with the status from the shared
 * code table: the one place where apid turns errors into HTTP.
 */
import { ArcboxError } from "../../../lib/errors.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import { ConnectError } from "@connectrpc/connect";
import { dockerError } from "./error-body.ts";

export { dockerError };

export function errorResponse(err: unknown): Response {
  const e = err instanceof ConnectError ? fromConnectError(err) : err;
  if (e instanceof ArcboxError) return dockerError(e.httpStatus, e.message);
  if (e instanceof SyntaxError) return dockerError(400, `invalid JSON: ${e.message}`);
  return dockerError(500, e instanceof Error ? e.message : String(e));
}
