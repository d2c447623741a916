/** ImageError: every failure imaged reports, with a code from the shared table. */
import { ArcboxError, type ErrorCode } from "../../../lib/errors.ts";

export class ImageError extends ArcboxError {
  override name = "ImageError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export const notFound = (ref: string) => new ImageError("not_found", `No such image: ${ref}`);

/** A full disk (ENOSPC, SQLite's "database or disk is full") as a typed error Docker clients can read. */
export function diskError(err: unknown): unknown {
  if (err instanceof ArcboxError) return err;
  const e = err as { code?: string; message?: string };
  if (e?.code === "ENOSPC") return new ImageError("internal", e.message ?? "no space left on device", { cause: err });
  if (e?.code === "SQLITE_FULL") return new ImageError("internal", `no space left on device: ${e.message}`, { cause: err });
  return err;
}
