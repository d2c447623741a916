/**
 * One error hierarchy for all of ArcBox. Each service subclasses `ArcboxError`
 * (ImageError, NetworkError, ...) and picks a code from the closed `ErrorCode` set;
 * the edges map codes to Connect codes (between services) and to Docker HTTP
 * statuses (apid), from the single table below.
 */
import { Code, ConnectError } from "@connectrpc/connect";

export type ErrorCode =
  | "invalid_argument"
  | "not_found"
  | "already_exists"
  | "conflict"
  | "failed_precondition"
  | "permission_denied"
  | "unavailable"
  | "not_implemented"
  | "canceled"
  | "internal";

interface CodeMapping {
  connect: Code;
  http: number;
}

/** The only place where error codes meet transports. */
export const ERROR_CODE_TABLE: Record<ErrorCode, CodeMapping> = {
  invalid_argument: { connect: Code.InvalidArgument, http: 400 },
  not_found: { connect: Code.NotFound, http: 404 },
  already_exists: { connect: Code.AlreadyExists, http: 409 },
  conflict: { connect: Code.Aborted, http: 409 },
  failed_precondition: { connect: Code.FailedPrecondition, http: 409 },
  permission_denied: { connect: Code.PermissionDenied, http: 403 },
  unavailable: { connect: Code.Unavailable, http: 503 },
  not_implemented: { connect: Code.Unimplemented, http: 501 },
  canceled: { connect: Code.Canceled, http: 499 },
  internal: { connect: Code.Internal, http: 500 },
};

export class ArcboxError extends Error {
  override name = "ArcboxError";
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get httpStatus(): number {
    return ERROR_CODE_TABLE[this.code].http;
  }
}

const connectToCode = new Map<Code, ErrorCode>(
  Object.entries(ERROR_CODE_TABLE).map(([code, m]) => [m.connect, code as ErrorCode]),
);

/** Server edge: any thrown value becomes a ConnectError carrying our code. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof ArcboxError) return new ConnectError(err.message, ERROR_CODE_TABLE[err.code].connect, undefined, undefined, err);
  return new ConnectError(err instanceof Error ? err.message : String(err), Code.Internal, undefined, undefined, err);
}

/** Client edge: a ConnectError from another service becomes an ArcboxError again. */
export function fromConnectError(err: unknown): ArcboxError {
  if (err instanceof ArcboxError) return err;
  if (err instanceof ConnectError) {
    return new ArcboxError(connectToCode.get(err.code) ?? "internal", err.rawMessage, { cause: err });
  }
  return new ArcboxError("internal", err instanceof Error ? err.message : String(err), { cause: err });
}
