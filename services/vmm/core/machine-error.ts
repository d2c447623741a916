/** Errors raised by vmm (machine management and the link to a machine's guest agent). */
import { ArcboxError, type ErrorCode } from "../../../lib/errors.ts";

export class MachineError extends ArcboxError {
  override name = "MachineError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
