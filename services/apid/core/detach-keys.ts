/**
 * Docker's detach key sequences (moby/term ToBytes): comma-separated keys, each a single
 * character or `ctrl-<c>` for a through z and @ [ \ ] ^ _ (case-insensitive). An empty
 * or absent spec means the default, ctrl-p,ctrl-q.
 */
export const DEFAULT_DETACH_KEYS = Uint8Array.of(16, 17);

const CTRL_SPECIALS: Record<string, number> = { "@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, _: 31 };

/** The key bytes, or undefined when the spec names a key Docker does not know. */
export function parseDetachKeys(spec: string | null | undefined): Uint8Array | undefined {
  if (!spec) return DEFAULT_DETACH_KEYS;
  const out: number[] = [];
  for (const key of spec.split(",")) {
    if (key.length === 1) {
      out.push(key.charCodeAt(0));
      continue;
    }
    const ctrl = /^ctrl-(.)$/i.exec(key);
    const c = ctrl?.[1]?.toLowerCase();
    const code = c === undefined ? undefined : c >= "a" && c <= "z" ? c.charCodeAt(0) - 96 : CTRL_SPECIALS[c];
    if (code === undefined) return undefined;
    out.push(code);
  }
  return Uint8Array.from(out);
}
