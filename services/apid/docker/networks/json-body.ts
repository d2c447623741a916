/** Reads a JSON request body and validates it with a zod schema; bad input is a 400 with the reasons. */
import type { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";
import { parseJsonText } from "../json-text.ts";

export async function jsonBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  const text = await req.text();
  const raw = text ? parseJsonText(text) : {};
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ArcboxError("invalid_argument", parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
  return parsed.data;
}
