/**
 * Start failures as Docker reports them, and a bounded wait. The docker CLI reads the
 * message: "executable file not found" / "no such file" -> exit 127, "permission denied" -> 126.
 */
import type { ArcboxError } from "../../../lib/errors.ts";
import { ContainerError } from "./container-error.ts";

/** Whether `p` settles within `ms` (the timer is always cleared). */
export async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Docker's start-failure messages, which the CLI maps to exit codes 127 and 126. */
export function startFailure(err: ArcboxError): { error: ArcboxError; message: string; exitCode: number } {
  const msg = err.message;
  const notFound = /executable file not found|no such file or directory/i.test(msg);
  const denied = /permission denied/i.test(msg);
  if (notFound || denied) {
    const message = msg.startsWith("failed to create task") ? msg : `failed to create task for container: ${msg}${msg.endsWith(": unknown") ? "" : ": unknown"}`;
    return { error: new ContainerError("invalid_argument", message, { cause: err }), message, exitCode: notFound ? 127 : 126 };
  }
  return { error: err, message: msg, exitCode: 128 };
}
