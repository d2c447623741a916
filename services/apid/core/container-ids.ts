/** Container IDs, and image references as Docker spells them in messages. */

/** 64 hex digits, never all-numeric in the short form (it would read as a number). */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let id = Buffer.from(bytes).toString("hex");
  if (/^\d{12}/.test(id)) id = `a${id.slice(1)}`;
  return id;
}

/** `name` -> `name:latest`, as Docker's "No such image" message shows a tagless reference. */
export function withDefaultTag(ref: string): string {
  if (ref.includes("@") || /^[0-9a-f]{12,64}$/.test(ref) || ref.startsWith("sha256:")) return ref;
  const lastSlash = ref.lastIndexOf("/");
  return ref.slice(lastSlash + 1).includes(":") ? ref : `${ref}:latest`;
}
