/** ImageError: every failure imaged reports, with a code from the shared table. */
import { ArcboxError, type ErrorCode } from "../../../lib/errors.ts";

export class ImageError extends ArcboxError {
  override name = "ImageError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export const notFound = (ref: string) => new ImageError("not_found", `No such image: ${ref}`);
