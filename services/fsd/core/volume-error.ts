/** The error type of fsd (codes map to Docker statuses at apid's edge). */
import { ArcboxError, type ErrorCode } from "../../../lib/errors.ts";

export class VolumeError extends ArcboxError {
  override name = "VolumeError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
