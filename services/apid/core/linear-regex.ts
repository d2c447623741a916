/**
 * Regular expressions for user-supplied filter values (`docker ps --filter name=...`),
 * matched in linear time as Go's RE2 does. JavaScript's engine backtracks: the name
 * filter `(a+)+b` against a container named with 30 a's kept apid busy for minutes.
 *
 * The usual syntax: literals, `.`, classes (`[a-z]`, `[^x]`, `\d \w \s` and their
 * negations), groups (`(...)`, `(?:...)`, `(?P<n>...)`), `|`, `* + ?` (lazy forms too),
 * `{n}`, `{n,}`, `{n,m}`, and `^`/`$` anchors. A pattern outside that subset does not
 * compile (`compileLinear` returns undefined) and the caller falls back to plain text.
 * Matching is a Pike VM over a Thompson NFA: O(pattern x text), no backtracking.
 */

type Pred = (c: string) => boolean;
type Node =
  | { k: "char"; pred: Pred }
  | { k: "cat"; xs: Node[] }
  | { k: "alt"; xs: Node[] }
  | { k: "rep"; x: Node; min: number; max: number } // max -1: unbounded
  | { k: "bol" }
  | { k: "eol" }
  | { k: "empty" };

class Unsupported extends Error {}

const CONTROL: Record<string, string> = { n: "\n", t: "\t", r: "\r", f: "\f", v: "\v" };

const MAX_REPEAT = 1000;
const MAX_PROGRAM = 5_000;
/** Bounds on the pattern itself, so parsing and compiling never recurse deeply. */
const MAX_PATTERN = 1000;
const MAX_GROUP_DEPTH = 100;

const isDigit: Pred = (c) => c >= "0" && c <= "9";
const isWord: Pred = (c) => isDigit(c) || (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_";
const isSpace: Pred = (c) => c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
const not =
  (p: Pred): Pred =>
  (c) =>
    !p(c);

function parse(pattern: string): Node {
  const s = [...pattern];
  if (s.length > MAX_PATTERN) throw new Unsupported(pattern);
  let i = 0;
  let groups = 0;
  const peek = () => s[i];
  const eat = (c: string) => (s[i] === c ? (i++, true) : false);
  const fail = (): never => {
    throw new Unsupported(pattern);
  };

  /** An escape after `\`: a class predicate or a literal punctuation character. */
  const escape = (): Pred => {
    const c = s[i++] ?? fail();
    switch (c) {
      case "d":
        return isDigit;
      case "D":
        return not(isDigit);
      case "w":
        return isWord;
      case "W":
        return not(isWord);
      case "s":
        return isSpace;
      case "S":
        return not(isSpace);
    }
    const control = CONTROL[c];
    if (control) return (x) => x === control;
    if (/[\p{L}\p{N}]/u.test(c)) fail(); // \b, \A, \pN, back references...: not supported
    return (x) => x === c;
  };

  const klass = (): Pred => {
    const negate = eat("^");
    const parts: Pred[] = [];
    let first = true;
    while (peek() !== "]" || first) {
      first = false;
      const c = s[i++] ?? fail();
      if (c === "[" && peek() === ":") fail(); // POSIX classes
      let lo: string | undefined;
      let pred: Pred | undefined;
      if (c === "\\") {
        const e = s[i] ?? fail();
        if ("dDwWsS".includes(e)) pred = escape();
        else {
          i++;
          lo = CONTROL[e] ?? (/[\p{L}\p{N}]/u.test(e) ? fail() : e);
        }
      } else lo = c;
      if (lo !== undefined && peek() === "-" && s[i + 1] !== "]" && s[i + 1] !== undefined) {
        i++;
        let hi = s[i++]!;
        if (hi === "\\") {
          const e = s[i++] ?? fail();
          hi = CONTROL[e] ?? (/[\p{L}\p{N}]/u.test(e) ? fail() : e);
        }
        if (hi < lo) fail();
        const l = lo;
        parts.push((x) => x >= l && x <= hi);
      } else parts.push(pred ?? ((x) => x === lo));
    }
    i++; // ]
    return (x) => parts.some((p) => p(x)) !== negate;
  };

  const number = (): number | undefined => {
    const start = i;
    while (peek() !== undefined && isDigit(peek()!)) i++;
    return i > start ? Number(s.slice(start, i).join("")) : undefined;
  };

  const atom = (): Node => {
    const c = s[i++]!;
    if (c === "(") {
      if (++groups > MAX_GROUP_DEPTH) fail();
      if (eat("?")) {
        if (eat(":")) {
        } else if (eat("P") || peek() === "<") {
          if (!eat("<")) fail();
          while (peek() !== undefined && peek() !== ">") i++;
          if (!eat(">")) fail();
        } else fail(); // flags and other group kinds
      }
      const inner = alt();
      if (!eat(")")) fail();
      groups--;
      return inner;
    }
    if (c === "[") return { k: "char", pred: klass() };
    if (c === ".") return { k: "char", pred: (x) => x !== "\n" };
    if (c === "^") return { k: "bol" };
    if (c === "$") return { k: "eol" };
    if (c === "\\") return { k: "char", pred: escape() };
    if (c === ")" || c === "*" || c === "+" || c === "?" || c === "{") fail();
    return { k: "char", pred: (x) => x === c };
  };

  const repeat = (): Node => {
    let x = atom();
    for (;;) {
      let min: number;
      let max: number;
      if (eat("*")) (min = 0), (max = -1);
      else if (eat("+")) (min = 1), (max = -1);
      else if (eat("?")) (min = 0), (max = 1);
      else if (peek() === "{") {
        const save = i;
        i++;
        const lo = number();
        if (lo === undefined) {
          i = save;
          break;
        }
        let hi = lo;
        if (eat(",")) hi = number() ?? -1;
        if (!eat("}")) fail();
        if (lo > MAX_REPEAT || hi > MAX_REPEAT || (hi !== -1 && hi < lo)) fail();
        (min = lo), (max = hi);
      } else break;
      eat("?"); // lazy: the same language
      if (x.k === "bol" || x.k === "eol") fail();
      x = { k: "rep", x, min, max };
    }
    return x;
  };

  const concat = (): Node => {
    const xs: Node[] = [];
    while (i < s.length && peek() !== "|" && peek() !== ")") xs.push(repeat());
    return xs.length === 0 ? { k: "empty" } : xs.length === 1 ? xs[0]! : { k: "cat", xs };
  };

  const alt = (): Node => {
    const xs = [concat()];
    while (eat("|")) xs.push(concat());
    return xs.length === 1 ? xs[0]! : { k: "alt", xs };
  };

  const tree = alt();
  if (i !== s.length) fail();
  return tree;
}

type Inst = { op: "char"; pred: Pred; next: number } | { op: "split"; a: number; b: number } | { op: "jmp"; to: number } | { op: "bol"; next: number } | { op: "eol"; next: number } | { op: "match" };

/** Thompson construction into a flat program; each fragment returns its entry and leaves holes patched later. */
function compile(tree: Node): Inst[] {
  const prog: Inst[] = [];
  const emit = (ins: Inst) => {
    if (prog.length >= MAX_PROGRAM) throw new Unsupported("program too large");
    prog.push(ins);
    return prog.length - 1;
  };
  // Each gen returns [entry, list of (inst index, field) that should point to "what comes next"].
  type Hole = [number, "next" | "a" | "b" | "to"];
  const patch = (holes: Hole[], to: number) => {
    for (const [at, f] of holes) (prog[at] as Record<string, unknown>)[f] = to;
  };
  const gen = (n: Node): [number, Hole[]] => {
    switch (n.k) {
      case "char": {
        const at = emit({ op: "char", pred: n.pred, next: -1 });
        return [at, [[at, "next"]]];
      }
      case "bol":
      case "eol": {
        const at = emit({ op: n.k, next: -1 });
        return [at, [[at, "next"]]];
      }
      case "empty": {
        const at = emit({ op: "jmp", to: -1 });
        return [at, [[at, "to"]]];
      }
      case "cat": {
        let [entry, holes] = gen(n.xs[0]!);
        for (const x of n.xs.slice(1)) {
          const [e, h] = gen(x);
          patch(holes, e);
          holes = h;
        }
        return [entry, holes];
      }
      case "alt": {
        // Right to left: split(x1, split(x2, ... xn)), without recursing per branch.
        let [entry, holes] = gen(n.xs[n.xs.length - 1]!);
        for (let k = n.xs.length - 2; k >= 0; k--) {
          const [e, h] = gen(n.xs[k]!);
          entry = emit({ op: "split", a: e, b: entry });
          holes = [...h, ...holes];
        }
        return [entry, holes];
      }
      case "rep": {
        // x{min} followed by (max-min) optional copies, or x* when unbounded.
        const parts: Node[] = Array.from({ length: n.min }, () => n.x);
        if (n.max === -1) {
          const split = emit({ op: "split", a: -1, b: -1 });
          const [e, h] = gen(n.x);
          patch(h, split);
          (prog[split] as { a: number }).a = e;
          const star: [number, Hole[]] = [split, [[split, "b"]]];
          if (parts.length === 0) return star;
          const [pe, ph] = gen({ k: "cat", xs: parts });
          patch(ph, star[0]);
          return [pe, star[1]];
        }
        let tail: [number, Hole[]] | undefined;
        for (let k = n.max - n.min; k > 0; k--) {
          // optional(x then tail)
          const split = emit({ op: "split", a: -1, b: -1 });
          const [e, h] = gen(n.x);
          (prog[split] as { a: number }).a = e;
          const holes: Hole[] = [[split, "b"]];
          if (tail) {
            patch(h, tail[0]);
            holes.push(...tail[1]);
          } else holes.push(...h);
          tail = [split, holes];
        }
        if (parts.length === 0) return tail ?? gen({ k: "empty" });
        const [pe, ph] = gen(parts.length === 1 ? parts[0]! : { k: "cat", xs: parts });
        if (!tail) return [pe, ph];
        patch(ph, tail[0]);
        return [pe, tail[1]];
      }
    }
  };
  const [entry, holes] = gen(tree);
  const m = emit({ op: "match" });
  patch(holes, m);
  // Entry first: run from index `entry`.
  (prog as Inst[] & { entry?: number }).entry = entry;
  return prog;
}

export type LinearRegex = (text: string) => boolean;

/** Compiles an unanchored search, or returns undefined for a pattern outside the subset. */
export function compileLinear(pattern: string): LinearRegex | undefined {
  let prog: Inst[] & { entry?: number };
  try {
    prog = compile(parse(pattern));
  } catch (err) {
    if (err instanceof Unsupported) return undefined;
    throw err;
  }
  const entry = prog.entry!;
  return (text) => {
    const chars = [...text];
    const n = chars.length;
    let list: number[] = [];
    let mark = new Int32Array(prog.length).fill(-1);
    let gen = 0;
    /** Follows epsilon edges from pc at position pos; true when it reaches match. */
    const add = (out: number[], pc: number, pos: number): boolean => {
      const stack = [pc];
      while (stack.length) {
        const p = stack.pop()!;
        if (mark[p] === gen) continue;
        mark[p] = gen;
        const ins = prog[p]!;
        if (ins.op === "match") return true;
        if (ins.op === "jmp") stack.push(ins.to);
        else if (ins.op === "split") stack.push(ins.b, ins.a);
        else if (ins.op === "bol") {
          if (pos === 0) stack.push(ins.next);
        } else if (ins.op === "eol") {
          if (pos === n) stack.push(ins.next);
        } else out.push(p);
      }
      return false;
    };
    for (let pos = 0; ; pos++) {
      gen++;
      const next: number[] = [];
      // Threads carried over from the previous character, then a new start here (unanchored search).
      for (const p of list) {
        const ins = prog[p] as { op: "char"; pred: Pred; next: number };
        if (pos > 0 && ins.pred(chars[pos - 1]!) && add(next, ins.next, pos)) return true;
      }
      if (add(next, entry, pos)) return true;
      if (pos === n) return false;
      list = next;
      if (gen > 1e9) mark = new Int32Array(prog.length).fill(-1);
    }
  };
}
