/** ArcboxError <-> ConnectError at the RPC edges, from one code table. */
import { Code, ConnectError } from "@connectrpc/connect";
import { ArcboxError, type ErrorCode } from "../errors.ts";

export const CONNECT_CODE: Record<ErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  conflict: Code.Aborted,
  failed_precondition: Code.FailedPrecondition,
  permission_denied: Code.PermissionDenied,
  unavailable: Code.Unavailable,
  not_implemented: Code.Unimplemented,
  canceled: Code.Canceled,
  internal: Code.Internal,
};

const codeOfConnect = new Map<Code, ErrorCode>(Object.entries(CONNECT_CODE).map(([code, c]) => [c, code as ErrorCode]));

/** Server edge: any thrown value becomes a ConnectError carrying our code. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ArcboxError) return new ConnectError(err.message, CONNECT_CODE[err.code], undefined, undefined, err);
  return new ConnectError(err instanceof Error ? err.message : String(err), Code.Internal, undefined, undefined, err);
}

/** Client edge: a ConnectError from another service becomes an ArcboxError again. */
export function fromConnectError(err: unknown): ArcboxError {
  if (err instanceof ArcboxError) return err;
  if (err instanceof ConnectError) return new ArcboxError(codeOfConnect.get(err.code) ?? "internal", err.rawMessage, { cause: err });
  return new ArcboxError("internal", err instanceof Error ? err.message : String(err), { cause: err });
}
