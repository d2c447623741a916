/** apid's error type: container and exec failures, mapped to Docker statuses at the edge. */
import { ArcboxError, type ErrorCode } from "../../../lib/errors.ts";

export class ContainerError extends ArcboxError {
  override name = "ContainerError";
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export const noSuchContainer = (ref: string) => new ContainerError("not_found", `No such container: ${ref}`);
export const noSuchExec = (id: string) => new ContainerError("not_found", `No such exec instance: ${id}`);
