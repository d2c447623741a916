/** Errors raised by the guest agent; their codes travel to vmm and on to apid unchanged. */
import { ArcboxError, type ErrorCode } from "../../lib/errors.ts";

export class GuestError extends ArcboxError {
  override name = "GuestError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Container and exec ids become paths and runc ids: keep them to a safe alphabet. */
export function checkId(kind: string, id: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id)) throw new GuestError("invalid_argument", `invalid ${kind} id ${JSON.stringify(id)}`);
  return id;
}
