/**
 * The classic builder: runs a parsed Dockerfile stage by stage, step by step. Each
 * step first asks the cache; a miss runs it (metadata steps make a config-only image,
 * RUN a container, COPY/ADD a layer from a staging directory) and records the result.
 * Multi-stage builds run every stage up to the target, as the classic builder does.
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join, posix } from "node:path";
import type { Logger } from "../../../lib/log.ts";
import { ArcboxError } from "../../../lib/errors.ts";
import { fromConnectError } from "../../../lib/rpc/connect-errors.ts";
import { call, type Backends } from "../core/backends.ts";
import type { StepContainers } from "./run-step.ts";
import { cacheKey, type BuildCache } from "./cache.ts";
import { checksumSources, isArchive, resolveSources, sourcesLabel, Stager, type CopySource } from "./copy.ts";
import { parseDockerfile, type Instruction } from "./dockerfile.ts";
import { BuildError, parseError } from "./errors.ts";
import { ImageView, SCRATCH } from "./image-view.ts";
import { applyMetadata, commandOf, DEFAULT_PATH, DEFAULT_SHELL, envMap, METADATA, splitWords, type RunConfig } from "./instructions.ts";
import { shortId, type BuildOutput } from "./output.ts";
import { runStep, type RunLimits } from "./run-step.ts";
import { processWord } from "./shell-lex.ts";

export interface BuildOptions {
  dockerfile: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  labels: Record<string, string>;
  target: string;
  noCache: boolean;
  pull: boolean;
  rm: boolean;
  forceRm: boolean;
  cacheFrom: string[];
  platform: string;
  limits: RunLimits;
}

export interface BuilderDeps {
  backends: Backends;
  containers: StepContainers;
  cache: BuildCache;
  tmpBase: string;
  log: Logger;
}

interface Stage {
  name: string;
  index: number;
  from: Instruction;
  commands: Instruction[];
}

interface StageState {
  imageId: string | undefined;
  config: RunConfig;
  cmdSet: boolean;
  /** Build args declared in this stage, with their values (undefined = no value). */
  args: Map<string, string | undefined>;
}

/** Build args any Dockerfile may use without declaring them. */
const BUILTIN_ARGS = new Set(["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"]);
const NOP = "/bin/sh -c #(nop) ";

function splitStages(instructions: Instruction[]): { metaArgs: Instruction[]; stages: Stage[] } {
  const metaArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.name === "from") {
      const words = ins.rest.trim().split(/\s+/);
      let name = "";
      if (words.length === 3 && words[1]!.toLowerCase() === "as") name = words[2]!.toLowerCase();
      else if (words.length !== 1) throw parseError(ins.line, "FROM requires either one or three arguments");
      if (name && !/^[a-z][a-z0-9-_.]*$/.test(name)) throw parseError(ins.line, `invalid name for build stage: "${name}", name can't start with a number or contain symbols`);
      if (name && stages.some((s) => s.name === name)) throw parseError(ins.line, `duplicate name ${name}`);
      stages.push({ name, index: stages.length, from: ins, commands: [] });
    } else if (stages.length === 0) {
      if (ins.name !== "arg") throw parseError(ins.line, "no build stage in current context");
      metaArgs.push(ins);
    } else stages.at(-1)!.commands.push(ins);
  }
  if (stages.length === 0) throw new BuildError("the Dockerfile (Dockerfile) cannot be empty");
  return { metaArgs, stages };
}

function argDecls(ins: Instruction, escape: string): [string, string | undefined][] {
  return splitWords(ins.rest, escape).map((w) => {
    const eq = w.indexOf("=");
    return eq < 0 ? [w, undefined] : [w.slice(0, eq), w.slice(eq + 1)];
  });
}

export class Builder {
  private readonly escape: string;
  private readonly metaArgs: Instruction[];
  private readonly stages: Stage[];
  private readonly total: number;
  private step = 0;
  private readonly metaValues = new Map<string, string | undefined>();
  private readonly usedArgs = new Set<string>();
  private readonly built = new Map<number, StageState>();
  private readonly views: { close(): Promise<void> }[] = [];
  private readonly ac = new AbortController();

  constructor(
    private readonly deps: BuilderDeps,
    private readonly opts: BuildOptions,
    private readonly out: BuildOutput,
    dockerfileText: string,
    private readonly contextDir: string,
  ) {
    const df = parseDockerfile(dockerfileText);
    this.escape = df.escape;
    const { metaArgs, stages } = splitStages(df.instructions);
    this.metaArgs = metaArgs;
    let last = stages.length - 1;
    if (opts.target) {
      last = stages.findIndex((s) => s.name === opts.target.toLowerCase());
      if (last < 0) throw new BuildError(`failed to reach build target ${opts.target} in Dockerfile`);
    }
    this.stages = stages.slice(0, last + 1);
    const labels = Object.entries(opts.labels);
    if (labels.length) {
      const text = `LABEL ${labels.map(([k, v]) => `${JSON.stringify(k)}=${JSON.stringify(v)}`).join(" ")}`;
      this.stages.at(-1)!.commands.push({ name: "label", line: 0, original: text, flags: new Map(), rest: text.slice(6) });
    }
    this.total = this.metaArgs.length + this.stages.reduce((n, s) => n + 1 + s.commands.length, 0);
  }

  cancel(): void {
    this.ac.abort();
  }

  async run(): Promise<string> {
    try {
      for (const ins of this.metaArgs) {
        this.announce(ins);
        for (const [name, def] of argDecls(ins, this.escape)) {
          const value = name in this.opts.buildArgs ? (this.opts.buildArgs[name] ?? undefined) : def !== undefined ? processWord(def, this.metaEnv(), this.escape) : undefined;
          this.metaValues.set(name, value);
          if (name in this.opts.buildArgs) this.usedArgs.add(name);
        }
      }
      let state: StageState | undefined;
      for (const stage of this.stages) {
        state = await this.runStage(stage);
        this.built.set(stage.index, state);
      }
      const unused = Object.keys(this.opts.buildArgs).filter((k) => !this.usedArgs.has(k) && !BUILTIN_ARGS.has(k));
      if (unused.length) this.out.stream(`[Warning] One or more build-args [${unused.sort().join(" ")}] were not consumed\n`);
      let id = state!.imageId;
      // A stage with no step of its own still yields an image of its own config.
      if (!id) id = await this.commitConfig(undefined, state!.config, `${NOP}scratch`);
      return id;
    } finally {
      for (const v of this.views.splice(0)) await v.close().catch((e) => this.deps.log.warn("closing an image view", { error: e }));
    }
  }

  private metaEnv(): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of this.metaValues) if (v !== undefined) m.set(k, v);
    return m;
  }

  private announce(ins: Instruction): void {
    if (this.ac.signal.aborted) throw new BuildError("the build was canceled");
    this.step++;
    this.out.stream(`Step ${this.step}/${this.total} : ${ins.original}\n`);
  }

  /** Substitution environment: declared args under the config's Env. */
  private env(s: StageState): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of s.args) if (v !== undefined) m.set(k, v);
    for (const [k, v] of envMap(s.config.Env)) m.set(k, v);
    return m;
  }

  private async inspect(ref: string): Promise<{ id: string; config: RunConfig } | undefined> {
    try {
      const res = await call(() => this.deps.backends.images.inspect({ reference: ref }));
      const cfg = (JSON.parse(res.configJson || "{}") as { config?: RunConfig }).config ?? {};
      return { id: res.id, config: cfg };
    } catch (err) {
      if (err instanceof ArcboxError && err.code === "not_found") return undefined;
      throw err;
    }
  }

  private async pull(ref: string): Promise<void> {
    for await (const msg of this.deps.backends.images.pull({ reference: ref, platform: this.opts.platform })) {
      const p = msg.progress;
      if (!p) continue;
      if (p.error) throw new BuildError(p.error);
      const line: Record<string, unknown> = { status: p.status };
      if (p.id) line.id = p.id;
      this.out.status(line);
    }
  }

  private async baseImage(ref: string): Promise<{ id: string; config: RunConfig }> {
    let img = this.opts.pull ? undefined : await this.inspect(ref);
    if (!img) {
      try {
        await this.pull(ref);
      } catch (err) {
        const local = this.opts.pull ? await this.inspect(ref) : undefined;
        if (!local) throw err instanceof ArcboxError ? err : fromConnectError(err);
        this.out.stream(`[Warning] could not pull ${ref}, using the local image: ${(err as Error).message}\n`);
      }
      img = await this.inspect(ref);
      if (!img) throw new BuildError(`pull access denied for ${ref}, repository does not exist or may require 'docker login'`);
    }
    return img;
  }

  private async runStage(stage: Stage): Promise<StageState> {
    this.announce(stage.from);
    const fromWords = stage.from.rest.trim().split(/\s+/);
    const ref = processWord(fromWords[0]!, this.metaEnv(), this.escape);
    if (!ref) throw new BuildError(`base name (${fromWords[0]}) should not be blank`);
    const prev = this.stages.slice(0, stage.index).find((s) => s.name === ref.toLowerCase());
    let state: StageState;
    if (prev) {
      const p = this.built.get(prev.index)!;
      state = { imageId: p.imageId, config: structuredClone(p.config), cmdSet: false, args: new Map() };
    } else if (ref.toLowerCase() === SCRATCH) {
      state = { imageId: undefined, config: { Env: [DEFAULT_PATH] }, cmdSet: false, args: new Map() };
      this.out.stream(" ---> \n");
    } else {
      const img = await this.baseImage(ref);
      state = { imageId: img.id, config: structuredClone(img.config), cmdSet: false, args: new Map() };
    }
    if (state.imageId) this.out.stream(` ---> ${shortId(state.imageId)}\n`);
    const triggers = state.config.OnBuild ?? [];
    if (triggers.length) {
      this.out.stream(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? "s" : ""}\n`);
      state.config.OnBuild = null;
      for (const t of triggers) {
        for (const ins of parseDockerfile(t).instructions) await this.runCommand(ins, state, true);
      }
    }
    for (const ins of stage.commands) await this.runCommand(ins, state, false);
    return state;
  }

  private async runCommand(ins: Instruction, s: StageState, trigger: boolean): Promise<void> {
    if (!trigger) this.announce(ins);
    if (ins.name === "arg") return this.argStep(ins, s);
    if (METADATA.has(ins.name)) {
      const text = applyMetadata(ins, s, this.env(s), this.escape);
      return this.cachedStep(s, `${NOP}${text}`, [], async () => this.commitConfig(s.imageId, s.config, `${NOP}${text}`));
    }
    if (ins.name === "run") return this.runInstruction(ins, s);
    return this.copyInstruction(ins, s);
  }

  private async argStep(ins: Instruction, s: StageState): Promise<void> {
    const env = this.env(s);
    const texts: string[] = [];
    for (const [name, def] of argDecls(ins, this.escape)) {
      let value: string | undefined;
      if (name in this.opts.buildArgs) {
        value = this.opts.buildArgs[name] ?? undefined;
        this.usedArgs.add(name);
      } else if (def !== undefined) value = processWord(def, env, this.escape);
      else value = this.metaValues.get(name);
      s.args.set(name, value);
      texts.push(def !== undefined ? `${name}=${def}` : name);
    }
    const text = `ARG ${texts.join(" ")}`;
    await this.cachedStep(s, `${NOP}${text}`, [], async () => this.commitConfig(s.imageId, s.config, `${NOP}${text}`));
  }

  /** Env entries for RUN: declared args with values that ENV does not override. */
  private argsEnv(s: StageState): string[] {
    const env = envMap(s.config.Env);
    return [...s.args]
      .filter(([k, v]) => v !== undefined && !env.has(k))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`);
  }

  private async runInstruction(ins: Instruction, s: StageState): Promise<void> {
    if (!s.imageId) throw new BuildError("RUN is not possible on an image without a filesystem (FROM scratch before any COPY)");
    const shell = s.config.Shell?.length ? s.config.Shell : DEFAULT_SHELL;
    const command = commandOf(ins, shell);
    const argsEnv = this.argsEnv(s);
    const createdBy = `${argsEnv.length ? `|${argsEnv.length} ${argsEnv.join(" ")} ` : ""}${command.join(" ")}`;
    const parentId = s.imageId;
    await this.cachedStep(s, createdBy, [], () =>
      runStep(this.deps.containers, this.deps.backends.images, this.out, {
        parentId,
        config: s.config,
        command,
        argsEnv,
        createdBy,
        limits: this.opts.limits,
        rm: this.opts.rm,
        forceRm: this.opts.forceRm,
        signal: this.ac.signal,
      }),
    );
  }

  private async sourceRoot(ins: Instruction, env: Map<string, string>): Promise<{ root: string; fromContext: boolean; label: string }> {
    const from = ins.flags.get("from");
    if (from === undefined) return { root: this.contextDir, fromContext: true, label: "" };
    const name = processWord(from, env, this.escape);
    const byName = this.stages.find((st) => st.name === name.toLowerCase() && this.built.has(st.index));
    const byIndex = /^\d+$/.test(name) ? this.built.get(Number(name)) : undefined;
    const stageState = byName ? this.built.get(byName.index) : byIndex;
    let imageId: string | undefined;
    if (stageState) imageId = stageState.imageId;
    else if (/^\d+$/.test(name) || this.stages.some((st) => st.name === name.toLowerCase())) throw new BuildError(`invalid from flag value ${name}: refers to a stage that is not built yet`);
    else imageId = (await this.baseImage(name)).id;
    if (!imageId) {
      mkdirSync(this.deps.tmpBase, { recursive: true, mode: 0o700 });
      const empty = mkdtempSync(join(this.deps.tmpBase, "empty-"));
      this.views.push({ close: () => rm(empty, { recursive: true, force: true }) });
      return { root: empty, fromContext: false, label: `from:${name}` };
    }
    const view = await ImageView.open(this.deps.backends, imageId, this.deps.tmpBase);
    this.views.push(view);
    return { root: await view.root(), fromContext: false, label: imageId };
  }

  private async copyInstruction(ins: Instruction, s: StageState): Promise<void> {
    const what = ins.name.toUpperCase();
    const env = this.env(s);
    const words = ins.json ?? splitWords(ins.rest, this.escape);
    const args = words.map((w) => (ins.json ? processWord(w.replace(/(["'\\])/g, "\\$1"), env, this.escape) : processWord(w, env, this.escape)));
    const rawDest = args.pop()!;
    for (const a of args)
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) throw new BuildError(`${what} failed: sources from URLs are not supported here (no network access for the builder); download the file into the context`);
    const src = await this.sourceRoot(ins, env);
    const sources = resolveSources(src.root, args, what);
    const wildcard = args.some((a) => /[*?[]/.test(a));
    const workdir = s.config.WorkingDir || "/";
    const destIsDir = rawDest.endsWith("/") || rawDest === "." || rawDest.endsWith("/.");
    let dest = rawDest.startsWith("/") ? rawDest : posix.join(workdir, rawDest);
    dest = posix.normalize(dest);
    if ((sources.length > 1 || wildcard) && !destIsDir) throw new BuildError(`When using ${what} with more than one source file, the destination must be a directory and end with a /`);
    const chown = ins.flags.get("chown") ? processWord(ins.flags.get("chown")!, env, this.escape) : undefined;
    const chmodFlag = ins.flags.get("chmod");
    let mode: number | undefined;
    if (chmodFlag !== undefined) {
      if (!/^[0-7]{3,4}$/.test(chmodFlag)) throw new BuildError(`invalid chmod parameter ${chmodFlag}: only octal modes are supported`);
      mode = parseInt(chmodFlag, 8);
    }
    const sums = checksumSources(sources);
    const label = sourcesLabel(sums);
    const flagText = `${chown ? `--chown=${chown} ` : ""}${chmodFlag ? `--chmod=${chmodFlag} ` : ""}${ins.flags.has("from") ? `--from=${ins.flags.get("from")} ` : ""}`;
    const createdBy = `${NOP}${what} ${flagText}${label} in ${dest}${destIsDir && !dest.endsWith("/") ? "/" : ""} `;
    await this.cachedStep(s, createdBy, [src.label, ins.name === "add" && src.fromContext ? sources.map((x) => isArchive(x.abs)) : []], async () => {
      const needView = !!s.imageId && (!destIsDir || (chown !== undefined && !/^\d+(:\d+)?$/.test(chown)));
      const view = needView ? await ImageView.open(this.deps.backends, s.imageId!, this.deps.tmpBase) : undefined;
      // Next to the context (same filesystem) when its files are hard-linked.
      const stagingBase = src.fromContext ? dirname(this.contextDir) : this.deps.tmpBase;
      mkdirSync(stagingBase, { recursive: true, mode: 0o700 });
      const staging = mkdtempSync(join(stagingBase, "layer-"));
      try {
        let owner: { uid: number; gid: number } | undefined;
        if (chown !== undefined) {
          if (/^\d+(:\d+)?$/.test(chown)) {
            const [u, g] = chown.split(":");
            owner = { uid: Number(u), gid: Number(g ?? u) };
          } else if (view) owner = view.resolveOwner(chown);
          else throw new BuildError(`unable to convert uid/gid chown string to host mapping: no /etc/passwd in a scratch image for ${chown}`);
        }
        const stager = new Stager({ staging, owner, mode, link: src.fromContext });
        const intoDir = destIsDir || (view?.isDirectory(dest) ?? false);
        for (const source of sources) await this.place(stager, source, dest, intoDir, ins.name === "add" && src.fromContext);
        return await this.commitLayer(s.imageId, s.config, staging, createdBy);
      } finally {
        await rm(staging, { recursive: true, force: true });
        await view?.close();
      }
    });
  }

  private async place(stager: Stager, source: CopySource, dest: string, intoDir: boolean, extract: boolean): Promise<void> {
    if (source.stat.isDirectory()) return stager.dirContents(source.abs, source.stat, dest);
    if (extract && isArchive(source.abs)) return stager.extract(source.abs, dest);
    stager.file(source.abs, source.stat, intoDir ? posix.join(dest, source.name) : dest);
  }

  private async commitConfig(parentId: string | undefined, config: RunConfig, createdBy: string): Promise<string> {
    const res = await call(() => this.deps.backends.images.commit({ parentImage: parentId ?? "", configJson: JSON.stringify(config), createdBy }));
    return res.id;
  }

  private async commitLayer(parentId: string | undefined, config: RunConfig, dir: string, createdBy: string): Promise<string> {
    const res = await call(() => this.deps.backends.images.commit({ parentImage: parentId ?? "", layerDir: dir, configJson: JSON.stringify(config), createdBy }));
    return res.id;
  }

  /** Full image configs of the `cachefrom` images that exist (looked up once). */
  private cacheSources?: Promise<FullConfig[]>;

  private async fullConfig(ref: string): Promise<FullConfig | undefined> {
    try {
      const res = await call(() => this.deps.backends.images.inspect({ reference: ref }));
      return JSON.parse(res.configJson || "{}") as FullConfig;
    } catch (err) {
      if (err instanceof ArcboxError && err.code === "not_found") return undefined;
      throw err;
    }
  }

  /**
   * A step restored from a `cachefrom` image, as the classic builder does: the image's
   * history continues the parent's with this very step, so its layer (if any) is reused.
   */
  private async fromCacheSources(s: StageState, createdBy: string): Promise<string | undefined> {
    if (this.opts.cacheFrom.length === 0) return undefined;
    this.cacheSources ??= Promise.all(this.opts.cacheFrom.map((r) => this.fullConfig(r))).then((xs) => xs.filter((x): x is FullConfig => !!x));
    const sources = await this.cacheSources;
    if (sources.length === 0) return undefined;
    const parent = s.imageId ? await this.fullConfig(s.imageId) : {};
    if (!parent) return undefined;
    const ph = parent.history ?? [];
    const pd = parent.rootfs?.diff_ids ?? [];
    for (const src of sources) {
      const sh = src.history ?? [];
      const sd = src.rootfs?.diff_ids ?? [];
      if (sh.length <= ph.length || !ph.every((h, i) => h.created_by === sh[i]!.created_by && !!h.empty_layer === !!sh[i]!.empty_layer)) continue;
      if (!pd.every((d, i) => sd[i] === d)) continue;
      const next = sh[ph.length]!;
      if (next.created_by !== createdBy) continue;
      const diffId = next.empty_layer ? "" : sd[pd.length];
      if (diffId === undefined) continue;
      const res = await call(() => this.deps.backends.images.commit({ parentImage: s.imageId ?? "", layerDiffId: diffId, configJson: JSON.stringify(s.config), createdBy }));
      return res.id;
    }
    return undefined;
  }

  /** Looks the step up in the cache (then the cachefrom images); runs it on a miss. Leaves the stage on the step's image. */
  private async cachedStep(s: StageState, createdBy: string, extraKey: unknown[], run: () => Promise<string>): Promise<void> {
    const key = cacheKey([s.imageId ?? "scratch", createdBy, ...extraKey]);
    const parent = s.imageId ?? "";
    if (!this.opts.noCache) {
      const hit = this.deps.cache.get(key);
      const img = hit ? await this.inspect(hit) : undefined;
      if (hit && !img) this.deps.cache.delete(key);
      if (img) {
        this.out.stream(" ---> Using cache\n");
        this.out.stream(` ---> ${shortId(img.id)}\n`);
        s.imageId = img.id;
        s.config = img.config;
        return;
      }
      const restored = await this.fromCacheSources(s, createdBy);
      if (restored) {
        this.deps.cache.put(key, restored, parent);
        this.out.stream(" ---> Using cache\n");
        this.out.stream(` ---> ${shortId(restored)}\n`);
        s.imageId = restored;
        return;
      }
    }
    const id = await run();
    this.deps.cache.put(key, id, parent);
    s.imageId = id;
    this.out.stream(` ---> ${shortId(id)}\n`);
  }
}

interface FullConfig {
  config?: RunConfig;
  history?: { created_by?: string; empty_layer?: boolean }[];
  rootfs?: { diff_ids?: string[] };
}
