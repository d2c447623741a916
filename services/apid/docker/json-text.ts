/**
 * JSON request bodies: nesting is bounded before parsing, as Go's encoding/json bounds
 * it for Docker (10,000 levels, "exceeded max depth"). Deeper bodies are a 400 here;
 * past about 100,000 levels they used to overflow the stack of whatever walked them
 * next (validation, storage) and came back as a 500.
 */
import { ArcboxError } from "../../../lib/errors.ts";
import { MAX_JSON_DEPTH } from "./request-body.ts";

/** The deepest nesting of objects and arrays in a JSON text (strings skipped), O(length). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) max = depth;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return max;
}

/** JSON.parse for request bodies: a 400 for malformed or too deeply nested JSON. */
export function parseJsonText(text: string): unknown {
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw new ArcboxError("invalid_argument", `invalid JSON: exceeded max depth (${MAX_JSON_DEPTH} levels)`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ArcboxError("invalid_argument", `invalid JSON: ${(err as Error).message}`);
  }
}
