/** The classic builder's Dockerfile parser, word processing and .dockerignore matching. */
import { expect, test } from "bun:test";
import { parseDockerfile } from "../../services/apid/build/dockerfile.ts";
import { IgnoreMatcher } from "../../services/apid/build/dockerignore.ts";
import { applyMetadata, parseNameValues, type MetaState } from "../../services/apid/build/instructions.ts";
import { processWord, processWords } from "../../services/apid/build/shell-lex.ts";

const env = new Map([
  ["A", "alpha"],
  ["EMPTY", ""],
  ["SP", "a b"],
]);

test("directives, comments, continuations and line numbers", () => {
  const df = parseDockerfile(
    ["# syntax=docker/dockerfile:1", "# escape=`", "", "# a comment", "FROM busybox AS base", "RUN echo a && `", "  # dropped comment", "", "    echo b", "copy --chown=1:2 a b /dst/"].join("\n"),
  );
  expect(df.escape).toBe("`");
  expect(df.instructions.map((i) => [i.name, i.line])).toEqual([
    ["from", 5],
    ["run", 6],
    ["copy", 10],
  ]);
  expect(df.instructions[1]!.rest).toBe("echo a &&     echo b");
  expect(df.instructions[1]!.original).toBe("RUN echo a &&     echo b");
  expect(df.instructions[2]!.flags.get("chown")).toBe("1:2");
  expect(df.instructions[2]!.rest).toBe("a b /dst/");
});

test("a directive after the first instruction is a comment", () => {
  const df = parseDockerfile("FROM x\n# escape=`\nRUN a \\\n b");
  expect(df.escape).toBe("\\");
  expect(df.instructions[1]!.rest).toBe("a  b");
});

test("exec (JSON) and shell forms", () => {
  const df = parseDockerfile('FROM x\nCMD ["echo", "hi"]\nCMD echo hi\nENTRYPOINT [not json]\nSHELL ["/bin/ash", "-c"]');
  expect(df.instructions[1]!.json).toEqual(["echo", "hi"]);
  expect(df.instructions[2]!.json).toBeUndefined();
  expect(df.instructions[3]!.json).toBeUndefined();
  expect(df.instructions[4]!.json).toEqual(["/bin/ash", "-c"]);
});

test("errors name the line", () => {
  expect(() => parseDockerfile("FROM x\n\nFOO bar")).toThrow("dockerfile parse error on line 3: unknown instruction: FOO");
  expect(() => parseDockerfile("FROM x\nSHELL /bin/sh -c")).toThrow("line 2: SHELL requires the arguments to be in JSON form");
  expect(() => parseDockerfile("FROM x\nCOPY onlyone")).toThrow("line 2: COPY requires at least two arguments");
  expect(() => parseDockerfile("FROM x\nCOPY --bogus=1 a b")).toThrow("line 2: unknown flag: --bogus");
  expect(() => parseDockerfile("FROM x\nONBUILD ONBUILD RUN x")).toThrow("Chaining ONBUILD");
});

test("BuildKit-only syntax is refused clearly", () => {
  expect(() => parseDockerfile("FROM x\nRUN --mount=type=cache,target=/c make")).toThrow("line 2: the --mount option requires BuildKit");
  expect(() => parseDockerfile("FROM x\nRUN <<EOF\necho hi\nEOF")).toThrow("line 2: heredocs (<<EOF) are BuildKit-only syntax");
  expect(() => parseDockerfile("FROM x\nCOPY <<-'EOT' /f\nx\nEOT")).toThrow("heredocs");
  // A shift in arithmetic is no heredoc.
  expect(parseDockerfile("FROM x\nRUN echo $((1<<2))").instructions).toHaveLength(2);
});

test("variable substitution as Docker does it", () => {
  expect(processWord("$A ${A} x${A}y", env)).toBe("alpha alpha xalphay");
  expect(processWord("${MISSING:-def} ${EMPTY:-def} ${EMPTY-def} ${MISSING-def}", env)).toBe("def def  def");
  expect(processWord("${A:+alt} ${EMPTY:+alt}|${MISSING+alt}|${EMPTY+alt}", env)).toBe("alt ||alt");
  expect(processWord("${MISSING:-${A}}", env)).toBe("alpha");
  expect(processWord('\\$A \'$A\' "$A" "\\$A"', env)).toBe("$A $A alpha $A");
  expect(processWord("a\\ b", env)).toBe("a b");
  expect(processWord("cost: $", env)).toBe("cost: $");
  expect(() => processWord("${MISSING:?must be set}", env)).toThrow("MISSING: must be set");
  expect(processWord("`$A", env, "`")).toBe("$A");
  expect(processWords("$SP 'c d' e", env)).toEqual(["a", "b", "c d", "e"]);
});

test("ENV and LABEL pairs, both forms", () => {
  const df = parseDockerfile('FROM x\nENV A=1 B="two words" C=${A}\nENV LEGACY some value here\nLABEL "com.x"="y z" other=1');
  const [, e1, e2, l] = df.instructions;
  expect(parseNameValues(e1!, env, "\\")).toEqual([
    ["A", "1"],
    ["B", "two words"],
    ["C", "alpha"],
  ]);
  expect(parseNameValues(e2!, env, "\\")).toEqual([["LEGACY", "some value here"]]);
  expect(parseNameValues(l!, env, "\\")).toEqual([
    ["com.x", "y z"],
    ["other", "1"],
  ]);
});

test("metadata instructions update the config", () => {
  const df = parseDockerfile(
    'FROM x\nWORKDIR /app\nWORKDIR sub/../src\nEXPOSE 80 8000-8001/udp\nCMD echo hi\nENTRYPOINT ["/e"]\nHEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost\nSTOPSIGNAL SIGINT\nONBUILD run echo later\nVOLUME /data /logs',
  );
  const s: MetaState = { config: {}, cmdSet: false };
  const texts = df.instructions.slice(1).map((i) => applyMetadata(i, s, env, "\\"));
  expect(s.config.WorkingDir).toBe("/app/src");
  expect(Object.keys(s.config.ExposedPorts!)).toEqual(["80/tcp", "8000/udp", "8001/udp"]);
  expect(s.config.Cmd).toEqual(["/bin/sh", "-c", "echo hi"]);
  // CMD was set in this stage, so ENTRYPOINT keeps it.
  expect(s.config.Entrypoint).toEqual(["/e"]);
  expect(s.config.Healthcheck).toEqual({ Test: ["CMD-SHELL", "wget -q localhost"], Interval: 5e9, Retries: 2 });
  expect(s.config.StopSignal).toBe("SIGINT");
  expect(s.config.OnBuild).toEqual(["RUN echo later"]);
  expect(Object.keys(s.config.Volumes!)).toEqual(["/data", "/logs"]);
  expect(texts[0]).toBe("WORKDIR /app");
  const s2: MetaState = { config: { Cmd: ["old"] }, cmdSet: false };
  applyMetadata(parseDockerfile("FROM x\nENTRYPOINT echo").instructions[1]!, s2, env, "\\");
  expect(s2.config.Cmd).toBeNull();
});

test(".dockerignore: **, exceptions, leading slash, parents", () => {
  const m = IgnoreMatcher.parse(["# comment", "/secret", "**/*.log", "build", "!build/keep.txt", "*.md", "!README.md", "tmp?"].join("\n"));
  expect(m.matches("secret")).toBe(true);
  expect(m.matches("secret/deep/file")).toBe(true);
  expect(m.matches("a/secret")).toBe(false);
  expect(m.matches("x.log")).toBe(true);
  expect(m.matches("a/b/c.log")).toBe(true);
  expect(m.matches("build/out.o")).toBe(true);
  expect(m.matches("build/keep.txt")).toBe(false);
  expect(m.matches("NOTES.md")).toBe(true);
  expect(m.matches("README.md")).toBe(false);
  expect(m.matches("docs/NOTES.md")).toBe(false);
  expect(m.matches("tmp1")).toBe(true);
  expect(m.matches("tmp12")).toBe(false);
  expect(m.matches("src/main.c")).toBe(false);
  expect(IgnoreMatcher.parse("*\n!src").matches("src/a/b")).toBe(false);
  expect(IgnoreMatcher.parse("docs/**/*.txt").matches("docs/a.txt")).toBe(true);
});
