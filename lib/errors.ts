/**
 * One error hierarchy for all of ArcBox. Each service subclasses `ArcboxError`
 * (ImageError, NetworkError, ...) and picks a code from the closed `ErrorCode` set;
 * the edges map codes to Connect codes (between services, lib/rpc/connect-errors.ts)
 * and to Docker HTTP statuses (apid), from the tables here. This module imports no
 * RPC code, so processes that only need the error type (the supervisor) stay light.
 */
export type ErrorCode = "invalid_argument" | "not_found" | "already_exists" | "conflict" | "failed_precondition" | "permission_denied" | "unavailable" | "not_implemented" | "canceled" | "internal";

/** Docker HTTP status of each code: the only place where error codes meet HTTP. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid_argument: 400,
  not_found: 404,
  already_exists: 409,
  conflict: 409,
  failed_precondition: 409,
  permission_denied: 403,
  unavailable: 503,
  not_implemented: 501,
  canceled: 499,
  internal: 500,
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
    return HTTP_STATUS[this.code];
  }
}
