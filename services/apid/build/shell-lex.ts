/**
 * Docker's Dockerfile word processing (moby/buildkit's shell lexer): quote removal,
 * the escape character, and variable substitution with `$VAR`, `${VAR}`,
 * `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, `${VAR:?msg}` and
 * `${VAR?msg}`. Used for the instructions Docker substitutes (FROM, COPY, ADD, ENV,
 * ARG, LABEL, EXPOSE, USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD excluded).
 */
import { BuildError } from "./errors.ts";

export type Env = ReadonlyMap<string, string>;

const isNameStart = (c: string) => /[A-Za-z_]/.test(c);
const isNameChar = (c: string) => /[A-Za-z0-9_]/.test(c);
const isSpace = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\r";

class Lexer {
  pos = 0;
  constructor(
    readonly s: string,
    readonly env: Env,
    readonly escape: string,
  ) {}

  peek(): string {
    return this.s[this.pos] ?? "";
  }

  /** Reads until one of `stops` (outside quotes) or the end; splits on spaces when `words`. */
  run(stops: string, words: boolean): string[] {
    const out: string[] = [];
    let cur = "";
    let inWord = false;
    while (this.pos < this.s.length) {
      const c = this.s[this.pos]!;
      if (stops.includes(c)) break;
      if (words && isSpace(c)) {
        this.pos++;
        if (inWord) out.push(cur), (cur = ""), (inWord = false);
        continue;
      }
      inWord = true;
      if (c === "'") cur += this.single();
      else if (c === '"') cur += this.double();
      else if (c === "$") {
        const v = this.dollar();
        if (!words) cur += v;
        else {
          // Unquoted expansions split into words, as in Docker's lexer.
          inWord = cur.length > 0;
          for (const ch of v) {
            if (isSpace(ch)) {
              if (inWord) out.push(cur), (cur = ""), (inWord = false);
            } else (cur += ch), (inWord = true);
          }
        }
      } else if (c === this.escape) {
        this.pos++;
        if (this.pos < this.s.length) cur += this.s[this.pos++];
        else cur += c;
      } else {
        cur += c;
        this.pos++;
      }
    }
    if (inWord || !words) out.push(cur);
    return out;
  }

  single(): string {
    this.pos++;
    const end = this.s.indexOf("'", this.pos);
    if (end < 0) throw new BuildError("unexpected end of statement while looking for matching single-quote");
    const v = this.s.slice(this.pos, end);
    this.pos = end + 1;
    return v;
  }

  double(): string {
    this.pos++;
    let v = "";
    for (;;) {
      if (this.pos >= this.s.length) throw new BuildError("unexpected end of statement while looking for matching double-quote");
      const c = this.s[this.pos]!;
      if (c === '"') {
        this.pos++;
        return v;
      }
      if (c === "$") v += this.dollar();
      else if (c === this.escape) {
        const n = this.s[this.pos + 1] ?? "";
        if (n === '"' || n === "$" || n === this.escape) {
          v += n;
          this.pos += 2;
        } else {
          v += c;
          this.pos++;
        }
      } else {
        v += c;
        this.pos++;
      }
    }
  }

  dollar(): string {
    this.pos++;
    const c = this.peek();
    if (c === "{") {
      this.pos++;
      let name = "";
      while (isNameChar(this.peek())) name += this.s[this.pos++];
      if (!name) throw new BuildError(`missing ':' in substitution`);
      const ch = this.peek();
      if (ch === "}") {
        this.pos++;
        return this.env.get(name) ?? "";
      }
      let op = "";
      if (ch === ":") {
        this.pos++;
        op = ":";
      }
      const m = this.peek();
      if (m !== "-" && m !== "+" && m !== "?") throw new BuildError(`unsupported modifier (${op}${m}) in substitution`);
      this.pos++;
      op += m;
      const word = this.run("}", false).join("");
      if (this.peek() !== "}") throw new BuildError("syntax error: missing '}'");
      this.pos++;
      const val = this.env.get(name);
      const set = val !== undefined;
      const nonEmpty = set && val !== "";
      switch (op) {
        case ":-":
          return nonEmpty ? val! : word;
        case "-":
          return set ? val! : word;
        case ":+":
          return nonEmpty ? word : "";
        case "+":
          return set ? word : "";
        case ":?":
          if (!nonEmpty) throw new BuildError(`${name}: ${word || "parameter null or not set"}`);
          return val!;
        default:
          if (!set) throw new BuildError(`${name}: ${word || "parameter not set"}`);
          return val!;
      }
    }
    if (c && isNameStart(c)) {
      let name = "";
      while (isNameChar(this.peek())) name += this.s[this.pos++];
      return this.env.get(name) ?? "";
    }
    return "$";
  }
}

/** One word: substitution and quote removal, spaces kept. */
export function processWord(s: string, env: Env, escape = "\\"): string {
  return new Lexer(s, env, escape).run("", false).join("");
}

/** Substitution and quote removal, split into words on unquoted whitespace. */
export function processWords(s: string, env: Env, escape = "\\"): string[] {
  return new Lexer(s, env, escape).run("", true);
}
