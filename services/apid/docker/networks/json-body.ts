/** Reads a JSON request body and validates it with a zod schema; bad input is a 400 with the reasons. */
import { z } from "zod";
import { ArcboxError } from "../../../../lib/errors.ts";

export async function jsonBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  const text = await req.text();
  let raw: unknown;
  try {
    raw = text ? JSON.parse(text) : {};
  } catch (e) {
    throw new ArcboxError("invalid_argument", `invalid JSON: ${(e as Error).message}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ArcboxError("invalid_argument", parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; "));
  return parsed.data;
}
