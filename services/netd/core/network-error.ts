/** The error type of netd: every failure carries an ArcboxError code (mapped to Docker statuses by apid). */
import { ArcboxError, type ErrorCode } from "../../../lib/errors.ts";

export class NetworkError extends ArcboxError {
  override name = "NetworkError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
