/**
 * JSON request bodies: a 400 for malformed JSON. Nesting depth is already bounded for
 * every JSON body at the socket (request-body.ts, Go's 10,000 levels), before any route
 * reads it, so the text is not scanned a second time here.
 */
import { ArcboxError } from "../../../lib/errors.ts";

/** JSON.parse for request bodies: a 400 for malformed JSON. */
export function parseJsonText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ArcboxError("invalid_argument", `invalid JSON: ${(err as Error).message}`);
  }
}
