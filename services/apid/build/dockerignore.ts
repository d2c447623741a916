/**
 * .dockerignore with Docker's rules (moby/patternmatcher): one pattern a line, `#`
 * comments, `!` exceptions, paths cleaned and a leading `/` dropped, `*`, `?`,
 * `[...]` and `**` (any number of directories). The last pattern that matches a path
 * or one of its parent directories decides.
 */
import { posix } from "node:path";

interface Pattern {
  re: RegExp;
  exclusion: boolean;
}

export class IgnoreMatcher {
  readonly patterns: Pattern[];
  readonly hasExceptions: boolean;

  constructor(lines: string[]) {
    this.patterns = [];
    for (let raw of lines) {
      raw = raw.trim();
      if (!raw || raw.startsWith("#")) continue;
      let exclusion = false;
      if (raw.startsWith("!")) {
        exclusion = true;
        raw = raw.slice(1).trim();
        if (!raw) continue;
      }
      let p = posix.normalize(raw);
      if (p.startsWith("/")) p = p.slice(1) || ".";
      if (p.endsWith("/") && p.length > 1) p = p.slice(0, -1);
      this.patterns.push({ re: toRegExp(p), exclusion });
    }
    this.hasExceptions = this.patterns.some((p) => p.exclusion);
  }

  static parse(text: string): IgnoreMatcher {
    return new IgnoreMatcher(text.split(/\r?\n/));
  }

  /** Whether a context path ("a/b/c", no leading slash) is excluded. */
  matches(path: string): boolean {
    const parents: string[] = [];
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) parents.push(parts.slice(0, i).join("/"));
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue;
      if (p.re.test(path) || parents.some((d) => p.re.test(d))) matched = !p.exclusion;
    }
    return matched;
  }
}

function escapeRe(c: string): string {
  return /[.+^${}()|[\]\\]/.test(c) ? `\\${c}` : c;
}

/** patternmatcher's conversion of a pattern to an anchored regular expression. */
export function toRegExp(pattern: string): RegExp {
  let re = "^";
  const s = pattern;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "*") {
      if (s[i + 1] === "*") {
        i++;
        // `**/` matches zero or more directories; a trailing `**` anything.
        if (s[i + 1] === "/") {
          i++;
          re += "(.*/)?";
        } else re += ".*";
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = s.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        let cls = s.slice(i + 1, end).replace(/\\/g, "\\\\");
        if (cls.startsWith("!")) cls = `^${cls.slice(1)}`;
        re += `[${cls}]`;
        i = end;
      }
    } else if (c === "\\" && i + 1 < s.length) {
      i++;
      re += escapeRe(s[i]!);
    } else re += escapeRe(c);
  }
  return new RegExp(`${re}$`);
}
