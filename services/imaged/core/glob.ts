/**
 * Go's path.Match patterns (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes; `*` and `?` do not
 * match `/`), matched in O(pattern x name) by stepping a set of pattern positions over
 * the name. A regular expression would backtrack: `docker images --filter
 * reference='**…*x'` took imaged down for good.
 */
import { ImageError } from "./errors.ts";

type Token = { t: "star" } | { t: "any" } | { t: "lit"; c: string } | { t: "class"; negate: boolean; ranges: [string, string][] };

export type Glob = (name: string) => boolean;

function badPattern(pattern: string): ImageError {
  return new ImageError("invalid_argument", `invalid filter 'reference=${pattern}': syntax error in pattern`);
}

function tokenize(pattern: string): Token[] {
  const chars = [...pattern];
  const out: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === "*") {
      if (out.at(-1)?.t !== "star") out.push({ t: "star" });
    } else if (c === "?") out.push({ t: "any" });
    else if (c === "\\") {
      if (i + 1 >= chars.length) throw badPattern(pattern);
      out.push({ t: "lit", c: chars[++i]! });
    } else if (c === "[") {
      let j = i + 1;
      const negate = chars[j] === "^";
      if (negate) j++;
      const ranges: [string, string][] = [];
      const one = () => {
        if (j >= chars.length) throw badPattern(pattern);
        if (chars[j] === "\\") j++;
        if (j >= chars.length) throw badPattern(pattern);
        return chars[j++]!;
      };
      do {
        if (j >= chars.length || chars[j] === "]") throw badPattern(pattern); // unterminated or empty
        const lo = one();
        let hi = lo;
        if (chars[j] === "-") {
          j++;
          hi = one();
        }
        if (hi < lo) throw badPattern(pattern);
        ranges.push([lo, hi]);
      } while (chars[j] !== "]");
      out.push({ t: "class", negate, ranges });
      i = j;
    } else out.push({ t: "lit", c });
  }
  return out;
}

/** Compiles a pattern once (throws a 400 for a malformed one); the matcher is linear per position. */
export function compileGlob(pattern: string): Glob {
  const tokens = tokenize(pattern);
  const n = tokens.length;
  /** Adds position i and, through stars (which may match nothing), the positions after them. */
  const close = (set: Uint8Array, i: number) => {
    for (; i <= n; i++) {
      set[i] = 1;
      if (i === n || tokens[i]!.t !== "star") break;
    }
  };
  return (name) => {
    let cur = new Uint8Array(n + 1);
    close(cur, 0);
    for (const ch of name) {
      const next = new Uint8Array(n + 1);
      let any = false;
      for (let i = 0; i < n; i++) {
        if (!cur[i]) continue;
        const tok = tokens[i]!;
        if (tok.t === "star") {
          if (ch !== "/") (next[i] = 1), close(next, i), (any = true);
        } else if (tok.t === "any" ? ch !== "/" : tok.t === "lit" ? tok.c === ch : tok.ranges.some(([lo, hi]) => lo <= ch && ch <= hi) !== tok.negate) {
          close(next, i + 1);
          any = true;
        }
      }
      if (!any) return false;
      cur = next;
    }
    return cur[n] === 1;
  };
}
