/**
 * docker build through the classic POST /build API (issue 14), with the real docker
 * CLI (DOCKER_BUILDKIT=0 and its default, which falls back to the classic builder
 * without buildx) and python3-docker's images.build, on a busybox base image built
 * locally and served by a test registry.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, TestDaemon } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox, type PushedImage } from "../helpers/test-images.ts";

let reg: TestRegistry;
let daemon: TestDaemon;
let busybox: PushedImage;
let BASE: string;
const dirs: string[] = [];

function context(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "arcbox-build-ctx-"));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, path, ".."), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const classic = { DOCKER_BUILDKIT: "0" };
const build = (args: string[], env: Record<string, string> = classic) => daemon.docker(["build", ...args], { env, timeoutMs: 180_000 });

beforeAll(async () => {
  reg = await startRegistry();
  busybox = await pushBusybox(reg);
  BASE = busybox.reference;
  daemon = new TestDaemon("arcbox-build-");
  await daemon.start();
  const p = await daemon.docker(["pull", "-q", BASE]);
  if (p.code !== 0) throw new Error(p.stderr);
}, 120_000);

afterAll(async () => {
  await daemon?.dispose();
  await reg?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

const MULTI = (base: string) => `# syntax=docker/dockerfile:1
ARG BASE=${base}
FROM \${BASE} AS builder
ARG GREETING=hello
WORKDIR /src
COPY src/ ./
RUN echo "$GREETING from \\
  the builder" > /out.txt && cat main.txt >> /out.txt
ADD bundle.tar /unpacked/

FROM \${BASE}
LABEL org.example.title="multi stage" version=1
ENV APP_HOME=/app PATH=/app/bin:$PATH
WORKDIR $APP_HOME
COPY --from=builder /out.txt ./
COPY --from=builder /unpacked/ ./unpacked/
COPY --chown=65534:65534 --chmod=600 secret.txt /app/secret.txt
COPY *.conf conf/
USER nobody
EXPOSE 8080 9000/udp
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD ["true"]
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/out.txt; ls /app/unpacked /app/conf; id -u; stat -c '%u %a' /app/secret.txt"]
`;

function multiContext(): string {
  const dir = context({
    Dockerfile: MULTI(BASE),
    "src/main.txt": "main file\n",
    "a.conf": "a",
    "b.conf": "b",
    "secret.txt": "s3cret",
    "ignored.log": "nope",
    "sub/ignored.log": "nope",
    ".dockerignore": "**/*.log\n",
  });
  const bundle = context({ "inner.txt": "from the tarball" });
  const t = Bun.spawnSync(["tar", "-cf", join(dir, "bundle.tar"), "-C", bundle, "inner.txt"]);
  if (t.exitCode !== 0) throw new Error("tar");
  return dir;
}

let multiDir: string;

test("a multi-stage Dockerfile using most instructions builds a runnable image", async () => {
  multiDir = multiContext();
  const r = await build(["-t", "multi:v1", "-t", "multi:also", multiDir]);
  expect(r.stderr + r.stdout).toContain("Successfully built");
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/Step 1\/\d+ : ARG BASE=/);
  expect(r.stdout).toContain(" ---> Running in ");
  expect(r.stdout).toContain("Removing intermediate container");
  expect(r.stdout).toContain("Successfully tagged multi:v1");
  expect(r.stdout).toContain("Successfully tagged multi:also");
  const run1 = await daemon.docker(["run", "--rm", "multi:v1"]);
  expect(run1.stderr).toBe("");
  expect(run1.stdout).toBe("hello from   the builder\nmain file\n/app/conf:\na.conf\nb.conf\n\n/app/unpacked:\ninner.txt\n65534\n65534 600\n");
  const inspect = await daemon.docker(["image", "inspect", "multi:v1"]);
  const img = JSON.parse(inspect.stdout)[0];
  const c = img.Config;
  expect(c.Env).toContain("APP_HOME=/app");
  expect(c.Env.find((e: string) => e.startsWith("PATH="))).toMatch(/^PATH=\/app\/bin:\/usr\/local\/sbin/);
  expect(c.WorkingDir).toBe("/app");
  expect(c.User).toBe("nobody");
  expect(c.Labels).toEqual({ "org.example.title": "multi stage", version: "1" });
  expect(c.ExposedPorts).toEqual({ "8080/tcp": {}, "9000/udp": {} });
  expect(c.Volumes).toEqual({ "/data": {} });
  expect(c.StopSignal).toBe("SIGTERM");
  expect(c.Healthcheck).toEqual({ Test: ["CMD", "true"], Interval: 30e9, Timeout: 3e9 });
  expect(c.Shell).toEqual(["/bin/sh", "-c"]);
  expect(c.OnBuild).toEqual(["RUN echo triggered"]);
  expect(c.Entrypoint).toEqual(["/bin/sh", "-c"]);
  // The step before the last is the image's Parent, as in Docker's classic builder.
  expect(img.Parent).toMatch(/^sha256:[0-9a-f]{64}$/);
  const parent = JSON.parse((await daemon.docker(["image", "inspect", img.Parent])).stdout)[0];
  expect(parent.Config.Entrypoint).toEqual(["/bin/sh", "-c"]);
  expect(parent.Config.Cmd).not.toEqual(c.Cmd);
  const hist = await daemon.docker(["history", "--no-trunc", "--format", "{{.CreatedBy}}", "multi:v1"]);
  expect(hist.stdout).toContain("/bin/sh -c #(nop) WORKDIR /app");
  // Each step names its image, as in Docker, down to the (one-entry) base image.
  const ids = (await daemon.docker(["history", "-q", "--no-trunc", "multi:v1"])).stdout.trim().split("\n");
  expect(ids[0]).toBe(img.Id);
  expect(ids[1]).toBe(img.Parent);
  expect(ids.at(-1)).toBe(busybox.configDigest);
  expect(ids.filter((i) => i.startsWith("sha256:")).length).toBeGreaterThan(10);
  expect(hist.stdout).toMatch(/\/bin\/sh -c #\(nop\) COPY multi:[0-9a-f]{64} in \/app\/conf\//);
  // Ignored files never reached the context.
  const ls = await daemon.docker(["run", "--rm", "--entrypoint", "ls", "multi:v1", "-a", "/app"]);
  expect(ls.stdout).not.toContain(".log");
  // The builder's intermediate containers are gone.
  const ps = await daemon.docker(["ps", "-aq"]);
  expect(ps.stdout.trim()).toBe("");
}, 240_000);

test("a rebuild uses the cache for every step; a changed file misses from its COPY on", async () => {
  const again = await build(["-t", "multi:v1", multiDir]);
  expect(again.code).toBe(0);
  const steps = again.stdout.split("\n").filter((l) => /^Step \d+\/\d+ : /.test(l));
  const cached = again.stdout.split("\n").filter((l) => l === " ---> Using cache").length;
  const fromSteps = steps.filter((s) => / : (FROM|ARG BASE)/.test(s)).length;
  expect(cached).toBe(steps.length - fromSteps);
  expect(again.stdout).not.toContain("Running in");
  writeFileSync(join(multiDir, "b.conf"), "changed");
  const changed = await build(["-t", "multi:v2", multiDir]);
  expect(changed.code).toBe(0);
  const tail = changed.stdout.slice(changed.stdout.indexOf("COPY *.conf conf/"));
  expect(tail).not.toContain("Using cache");
  expect(changed.stdout.slice(0, changed.stdout.indexOf("COPY *.conf conf/"))).toContain("Using cache");
  const ids = await daemon.docker(["images", "-q", "--no-trunc", "multi:v1"]);
  const ids2 = await daemon.docker(["images", "-q", "--no-trunc", "multi:v2"]);
  expect(ids.stdout.trim()).not.toBe(ids2.stdout.trim());
}, 240_000);

test("the cache survives a daemon restart; --no-cache rebuilds", async () => {
  await daemon.stop();
  await daemon.start();
  const again = await build(["-q", multiDir]);
  expect(again.code).toBe(0);
  const id = again.stdout.trim();
  expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
  const v2 = await daemon.docker(["images", "-q", "--no-trunc", "multi:v2"]);
  expect(id).toBe(v2.stdout.trim());
  const fresh = await build(["--no-cache", multiDir]);
  expect(fresh.code).toBe(0);
  expect(fresh.stdout).not.toContain("Using cache");
}, 240_000);

test("step images are hidden from docker images (shown with -a) and survive image prune", async () => {
  // Untagged heads stay visible (a builder stage's last image, a build without -t), as in Docker.
  const none = (out: string) => out.split("\n").filter((l) => l === "<none>:<none>").length;
  const shown = await daemon.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
  const all = await daemon.docker(["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"]);
  expect(none(shown.stdout)).toBeLessThanOrEqual(4);
  expect(none(all.stdout)).toBeGreaterThan(none(shown.stdout) + 15);
  const prune = await daemon.docker(["image", "prune", "-f"]);
  expect(prune.code).toBe(0);
  const again = await build(["-t", "multi:v2", multiDir]);
  expect(again.code).toBe(0);
  expect(again.stdout).not.toContain("Running in");
}, 240_000);

test("build args, target, labels, and the default (non-BUILDKIT) CLI path", async () => {
  const dir = context({
    Dockerfile: `ARG BASE
FROM $BASE AS first
ARG WHO=nobody
ARG UNSET
RUN echo "first:$WHO:\${UNSET:-none}" > /who
CMD ["cat", "/who"]
FROM first AS second
RUN echo second >> /who
`,
  });
  const r = await build(["--build-arg", `BASE=${BASE}`, "--build-arg", "WHO=args", "--build-arg", "EXTRA=1", "--label", "from.cli=yes", "--target", "first", "-t", "args:first", dir], {});
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("[Warning] One or more build-args [EXTRA] were not consumed");
  expect(r.stdout).not.toContain("echo second");
  const out = await daemon.docker(["run", "--rm", "args:first"]);
  expect(out.stdout).toBe("first:args:none\n");
  const labels = await daemon.docker(["image", "inspect", "-f", "{{json .Config.Labels}}", "args:first"]);
  expect(JSON.parse(labels.stdout)).toEqual({ "from.cli": "yes" });
  // The build arg reaches RUN (an ARG without a value does not) but never the image's Env.
  const env = await daemon.docker(["image", "inspect", "-f", "{{json .Config.Env}}", "args:first"]);
  expect(env.stdout).not.toContain("WHO");
  const hist = await daemon.docker(["history", "--no-trunc", "--format", "{{.CreatedBy}}", "args:first"]);
  expect(hist.stdout).toContain("|1 WHO=args /bin/sh -c echo");
}, 180_000);

test("a Dockerfile from -f, FROM scratch, and ONBUILD triggers of the base", async () => {
  const dir = context({
    // /tmp keeps its 1777 through a layer that only passes through it.
    "docker/Custom.df": `FROM multi:v1\nUSER root\nCOPY hello.txt /tmp/\nRUN test "$(stat -c %a /tmp)" = 1777 && test -f /app/out.txt && echo ok > /onbuild-ok\n`,
    "scratch.df": 'FROM scratch\nCOPY hello.txt /\nCMD ["/hello.txt"]\n',
    "hello.txt": "hi",
  });
  const r = await build(["-f", join(dir, "docker/Custom.df"), "-t", "child:v1", dir]);
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("# Executing 1 build trigger");
  expect(r.stdout).toContain("triggered");
  const cfg = await daemon.docker(["image", "inspect", "-f", "{{json .Config.OnBuild}}", "child:v1"]);
  expect(cfg.stdout.trim()).toBe("null");
  const s = await build(["-f", join(dir, "scratch.df"), "-t", "scratchy", dir]);
  expect(s.code).toBe(0);
  const layers = await daemon.docker(["image", "inspect", "-f", "{{len .RootFS.Layers}}", "scratchy"]);
  expect(layers.stdout.trim()).toBe("1");
  const save = await run(["sh", "-c", `docker -H ${daemon.dockerHost} save scratchy | tar -t | head -50`]);
  expect(save.code).toBe(0);
}, 180_000);

test("errors: syntax line, unknown instruction, missing COPY source, failing RUN, BuildKit syntax", async () => {
  const bad = context({ Dockerfile: `FROM ${BASE}\nRUN true\nFOO bar\n` });
  const r1 = await build(["-t", "bad:v1", bad]);
  expect(r1.code).not.toBe(0);
  expect(r1.stderr).toContain("dockerfile parse error on line 3: unknown instruction: FOO");
  const missing = context({ Dockerfile: `FROM ${BASE}\nCOPY nothere.txt /\n` });
  const r2 = await build(["-t", "bad:v2", missing]);
  expect(r2.code).not.toBe(0);
  expect(r2.stderr).toContain("COPY failed: file not found in build context or excluded by .dockerignore: stat nothere.txt: file does not exist");
  const failing = context({ Dockerfile: `FROM ${BASE}\nRUN echo before\nRUN exit 3\n` });
  const r3 = await build(["-t", "bad:v3", failing]);
  expect(r3.code).not.toBe(0);
  expect(r3.stderr).toContain("The command '/bin/sh -c exit 3' returned a non-zero code: 3");
  const mount = context({ Dockerfile: `FROM ${BASE}\nRUN --mount=type=cache,target=/x true\n` });
  const r4 = await build([mount]);
  expect(r4.stderr).toContain("the --mount option requires BuildKit");
  // A context symlink to a host file resolves inside the context, where it does not exist.
  const secret = context({ "secret.txt": "host-secret" });
  const links = context({ Dockerfile: `FROM ${BASE}\nCOPY link* /x/\nRUN cat /x/*\n` });
  symlinkSync(join(secret, "secret.txt"), join(links, "link.txt"));
  const r5 = await build(["-t", "bad:v5", links]);
  expect(r5.code).not.toBe(0);
  expect(r5.stderr).toContain("COPY failed: no source files were specified");
  expect(r5.stdout + r5.stderr).not.toContain("host-secret");
  // Nothing half-built is tagged.
  const tags = await daemon.docker(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
  expect(tags.stdout).not.toContain("bad:");
}, 180_000);

test("python3-docker images.build, and builder prune", async () => {
  const dir = context({ Dockerfile: `FROM ${BASE}\nARG V\nRUN echo "py-$V" > /v\nCMD ["cat", "/v"]\n` });
  const script = `
import json, sys, docker
c = docker.from_env()
img, logs = c.images.build(path=sys.argv[1], tag="py:v1", buildargs={"V": "7"}, rm=True)
print(json.dumps({"id": img.id, "tags": img.tags, "stream": "".join(l.get("stream", "") for l in logs)}))
`;
  const r = await run(["python3", "-c", script, dir], { env: { DOCKER_HOST: daemon.dockerHost }, timeoutMs: 120_000 });
  expect(r.stderr).toBe("");
  const res = JSON.parse(r.stdout);
  expect(res.tags).toEqual(["py:v1"]);
  expect(res.stream).toContain("Successfully built");
  const out = await daemon.docker(["run", "--rm", "py:v1"]);
  expect(out.stdout).toBe("py-7\n");
  const prune = await daemon.docker(["builder", "prune", "-f"], { env: classic });
  expect(prune.code).toBe(0);
  expect(prune.stdout).toMatch(/Total reclaimed space:/);
  const raw = await daemon.api("/build/prune", { method: "POST" });
  expect(raw.status).toBe(200);
  expect(await raw.json()).toEqual({ CachesDeleted: [], SpaceReclaimed: 0 });
  // Tagged images survive a prune and still run.
  const after = await daemon.docker(["run", "--rm", "py:v1"]);
  expect(after.stdout).toBe("py-7\n");
  // With the cache gone, a rebuild runs its steps again.
  const again = await build([dir, "--build-arg", "V=7"]);
  expect(again.stdout).toContain("Running in");
}, 180_000);

test("docker-compose 1.29 build: sections, through docker-py and through the CLI", async () => {
  const dir = context({
    "docker-compose.yml": `version: "3.8"
services:
  app:
    build:
      context: ./app
      dockerfile: Build.df
      args:
        MSG: composed
    image: composed:v1
`,
    "app/Build.df": `FROM ${BASE}\nARG MSG\nRUN echo "$MSG" > /msg\nCMD ["cat", "/msg"]\n`,
  });
  for (const cliBuild of ["0", "1"]) {
    const r = await run(["docker-compose", "-p", `buildtest${cliBuild}`, "-f", join(dir, "docker-compose.yml"), "build", "--no-cache"], {
      env: { DOCKER_HOST: daemon.dockerHost, COMPOSE_DOCKER_CLI_BUILD: cliBuild, DOCKER_BUILDKIT: "0" },
      timeoutMs: 120_000,
    });
    expect(r.code).toBe(0);
    const out = await daemon.docker(["run", "--rm", "composed:v1"]);
    expect(out.stdout).toBe("composed\n");
  }
}, 240_000);

test("--cache-from: steps restored from a loaded image when the local cache is empty", async () => {
  const dir = context({ Dockerfile: `FROM ${BASE}\nENV CF=1\nCOPY f.txt /f.txt\nRUN cat /f.txt > /g.txt\nCMD ["cat", "/g.txt"]\n`, "f.txt": "cached-from\n" });
  expect((await build(["-t", "cf:src", dir])).code).toBe(0);
  const tar = join(dir, "..", `${dir.split("/").pop()}-cf.tar`);
  dirs.push(tar);
  expect((await daemon.docker(["save", "-o", tar, "cf:src"])).code).toBe(0);
  expect((await daemon.docker(["rmi", "cf:src"])).code).toBe(0);
  expect((await daemon.docker(["builder", "prune", "-f"])).code).toBe(0);
  expect((await daemon.docker(["load", "-i", tar])).code).toBe(0);
  const r = await build(["--cache-from", "cf:src", "-t", "cf:again", dir]);
  expect(r.code).toBe(0);
  expect(r.stdout.split("\n").filter((l) => l === " ---> Using cache").length).toBe(4);
  expect(r.stdout).not.toContain("Running in");
  const out = await daemon.docker(["run", "--rm", "cf:again"]);
  expect(out.stdout).toBe("cached-from\n");
  const layers = async (ref: string) => (await daemon.docker(["image", "inspect", "-f", "{{json .RootFS.Layers}}", ref])).stdout.trim();
  expect(await layers("cf:again")).toBe(await layers("cf:src"));
}, 240_000);

test("RUN honours --network, --add-host and resource limits", async () => {
  const dir = context({ Dockerfile: `FROM ${BASE}\nRUN ! ip link show eth0 && grep -q "10.1.2.3.*myhost" /etc/hosts && echo isolated-ok\n` });
  const r = await build(["--no-cache", "--network", "none", "--add-host", "myhost:10.1.2.3", "--memory", "64m", "--cpu-shares", "512", "--shm-size", "32m", dir]);
  expect(r.stderr + r.stdout).toContain("isolated-ok");
  expect(r.code).toBe(0);
  const withNet = await build(["--no-cache", dir]);
  expect(withNet.code).not.toBe(0);
}, 180_000);

test("a built image pushes to a registry and pulls back runnable", async () => {
  const ref = `${reg.host}/built:v1`;
  expect((await daemon.docker(["tag", "multi:v1", ref])).code).toBe(0);
  const push = await daemon.docker(["push", ref], { timeoutMs: 120_000 });
  expect(push.stderr).toBe("");
  expect(push.code).toBe(0);
  expect((await daemon.docker(["rmi", ref])).code).toBe(0);
  const fresh = new TestDaemon("arcbox-build-pull-");
  try {
    await fresh.start();
    expect((await fresh.docker(["pull", "-q", ref], { timeoutMs: 120_000 })).code).toBe(0);
    const out = await fresh.docker(["run", "--rm", ref]);
    expect(out.stdout).toStartWith("hello from   the builder\nmain file\n");
  } finally {
    await fresh.dispose();
  }
}, 240_000);
