/** Errors of a build, worded as Docker's classic builder words them. */
import { ArcboxError } from "../../../lib/errors.ts";

/** A problem with the Dockerfile or the request (shown as the build's error). */
export class BuildError extends ArcboxError {
  constructor(message: string) {
    super("invalid_argument", message);
  }
}

/** A parse error, naming its line as Docker does. */
export function parseError(line: number, message: string): BuildError {
  return new BuildError(`dockerfile parse error on line ${line}: ${message}`);
}
