/**
 * The docker container workflow end to end, with the real docker CLI against a real
 * ArcBox daemon: run/ps/logs/exec/stop/rm/inspect/wait/top/stats/events/cp, exit codes,
 * stdin, TTY, restart policies and bad input.
 */
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestDaemon, run } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import { waitFor } from "../helpers/wait.ts";
import { IN_VM, test } from "../helpers/engine-mode.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;
const work = mkdtempSync(join(tmpdir(), "arcbox-containers-e2e-"));

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-containers-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

const docker = (args: string[], opts?: Parameters<TestDaemon["docker"]>[1]) => d.docker(args, opts);

const inspect = async (ref: string) => JSON.parse((await docker(["inspect", ref])).stdout)[0];

/**
 * Shell that prints a container's memory limit and pids limit, from cgroup v1 (the
 * host here) or v2 (the engine machine in VM mode, and dockerd on a v2 host).
 */
const LIMITS = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max";
const MEMORY_LIMIT = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";

describe("docker run", () => {
  test("prints stdout and stderr apart and returns the exit code", async () => {
    const r = await docker(["run", "--rm", "--network", "none", IMG, "sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
  });

  test("--rm removes the container", async () => {
    const r = await docker(["run", "--rm", "--name", "rm-me", "--network", "none", IMG, "true"]);
    expect(r.code).toBe(0);
    const ps = await docker(["ps", "-a", "--filter", "name=rm-me", "-q"]);
    expect(ps.stdout.trim()).toBe("");
  });

  test("piped stdin reaches the process and its end closes stdin", async () => {
    const r = await docker(["run", "-i", "--rm", "--network", "none", IMG, "sh", "-c", "cat; echo done"], { stdin: "line1\nline2\n" });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("line1\nline2\ndone\n");
  });

  test("a reader slower than the container loses none of its output", async () => {
    // 32 MiB read only after a pause: the output piles up behind the pipe, far past the
    // shim's 8 MiB per-client queue, and must be held back, never dropped.
    const r = await run(["sh", "-c", `docker -H ${d.dockerHost} run --rm --network none ${IMG} head -c 33554432 /dev/zero | (sleep 3; wc -c)`], {
      timeoutMs: IN_VM ? 600_000 : 60_000,
    });
    expect(r.stdout.trim()).toBe("33554432");
  });

  test("-it runs under a real terminal", async () => {
    const r = await run(["script", "-qec", `docker -H ${d.dockerHost} run -it --rm --network none ${IMG} sh -c 'tty; exit 7'`, "/dev/null"]);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain("/dev/pts/0");
  });

  test("unknown image: 404 No such image, CLI exits 125", async () => {
    const res = await d.api("/containers/create", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ Image: "127.0.0.1:1/nope:1" }) });
    expect(res.status).toBe(404);
    expect(((await res.json()) as any).message).toBe("No such image: 127.0.0.1:1/nope:1");
    const r = await docker(["run", "--rm", "--pull", "never", "127.0.0.1:1/nope:1"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain("No such image");
  });

  test("command not found exits 127, not executable exits 126, and --rm still cleans up", async () => {
    const notFound = await docker(["run", "--rm", "--name", "nf", "--network", "none", IMG, "nope"]);
    expect(notFound.code).toBe(127);
    expect(notFound.stderr).toContain('exec: "nope": executable file not found in $PATH');
    const denied = await docker(["run", "--rm", "--network", "none", IMG, "/etc/passwd"]);
    expect(denied.code).toBe(126);
    expect(denied.stderr).toContain("permission denied");
    expect((await docker(["ps", "-aq", "--filter", "name=nf"])).stdout.trim()).toBe("");
  });

  test("name conflict: 409 with Docker's message", async () => {
    expect((await docker(["create", "--name", "dup", "--network", "none", IMG, "true"])).code).toBe(0);
    const r = await docker(["run", "--name", "dup", "--network", "none", IMG, "true"]);
    expect(r.code).toBe(125);
    expect(r.stderr).toContain('Conflict. The container name "/dup" is already in use by container');
    const res = await d.api("/containers/create?name=dup", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ Image: IMG }) });
    expect(res.status).toBe(409);
    await docker(["rm", "dup"]);
  });

  test("malformed config: 400, nothing created", async () => {
    const before = (await docker(["ps", "-aq"])).stdout;
    for (const body of [
      '{"Image": 5}',
      "{not json",
      JSON.stringify({ Image: IMG, HostConfig: { RestartPolicy: { Name: "sometimes" } } }),
      JSON.stringify({ Image: IMG, HostConfig: { Sysctls: { "vm.swappiness": "1" } } }),
      JSON.stringify({ Image: IMG, HostConfig: { Memory: 1024 } }),
    ]) {
      const res = await d.api("/containers/create", { method: "POST", headers: { "Content-Type": "application/json" }, body });
      expect(res.status).toBe(400);
      expect(typeof ((await res.json()) as any).message).toBe("string");
    }
    expect((await docker(["ps", "-aq"])).stdout).toBe(before);
  });

  test("create options: env, workdir, user, hostname, labels, entrypoint, binds and tmpfs", async () => {
    const host = join(work, "bind");
    const r = await docker([
      "run",
      "--rm",
      "--network",
      "none",
      "-e",
      "FOO=bar",
      "-w",
      "/tmp",
      "-u",
      "65534",
      "-h",
      "myhost",
      "--label",
      "a=b",
      "--tmpfs",
      "/scratch",
      "-v",
      `${host}:/data`,
      "--entrypoint",
      "sh",
      IMG,
      "-c",
      "echo $FOO $(pwd) $(id -u) $(hostname); mount | grep -c ' /scratch '; touch /data/x && echo wrote",
    ]);
    expect(r.stdout).toBe("bar /tmp 65534 myhost\n1\n");
    expect(r.stderr).toContain("Permission denied");
    expect(r.code).not.toBe(0); // nobody cannot write to the root-owned bind dir
    const rootWrite = await docker(["run", "--rm", "--network", "none", "-v", `${host}:/data`, IMG, "sh", "-c", "echo hi > /data/x"]);
    expect(rootWrite.code).toBe(0);
    expect(readFileSync(join(host, "x"), "utf8")).toBe("hi\n");
  });
});

describe("security and resource options", () => {
  test("read-only rootfs, init, limits, capabilities, extra hosts, DNS, TTY size", async () => {
    const ro = await docker(["run", "--rm", "--network", "none", "--read-only", IMG, "touch", "/x"]);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toContain("Read-only file system");
    expect((await docker(["run", "--rm", "--network", "none", "--init", IMG, "cat", "/proc/1/cmdline"])).stdout).toContain("init");
    const limits = await docker(["run", "--rm", "--network", "none", "--memory", "32m", "--pids-limit", "50", IMG, "sh", "-c", LIMITS]);
    expect(limits.stdout).toBe("33554432\n50\n");
    const caps = await docker(["run", "--rm", "--network", "none", "--cap-drop", "ALL", IMG, "chown", "1", "/tmp"]);
    expect(caps.stderr).toContain("Operation not permitted");
    const files = await docker(["run", "--rm", "--network", "none", "--add-host", "foo:1.2.3.4", "--dns", "9.9.9.9", IMG, "sh", "-c", "grep foo /etc/hosts; grep nameserver /etc/resolv.conf"]);
    expect(files.stdout).toBe("1.2.3.4\tfoo\nnameserver 9.9.9.9\n");
    const size = await run(["script", "-qec", `stty rows 30 cols 100; docker -H ${d.dockerHost} run -it --rm --network none ${IMG} stty size`, "/dev/null"]);
    expect(size.stdout).toContain("30 100");
  });
});

describe("container lifecycle", () => {
  test("detached run, ps, inspect, logs, exec, top, stats, stop, rm", async () => {
    const id = (await docker(["run", "-d", "--name", "life", "--network", "none", IMG, "sh", "-c", "echo started; echo warn >&2; exec sleep 1000"])).stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const ps = await docker(["ps", "--format", "{{.Names}} {{.Status}}"]);
    expect(ps.stdout).toContain("life Up");
    const info = await inspect("life");
    expect(info.Id).toBe(id);
    expect(info.Name).toBe("/life");
    expect(info.State.Running).toBe(true);
    expect(info.State.Pid).toBeGreaterThan(0);
    expect(info.Config.Cmd).toEqual(["sh", "-c", "echo started; echo warn >&2; exec sleep 1000"]);
    expect(info.HostConfig.NetworkMode).toBe("none");
    await waitFor("log lines", async () => ((await docker(["logs", "life"])).stderr.includes("warn") ? true : undefined));
    const logs = await docker(["logs", "-t", "life"]);
    expect(logs.stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z started\n$/);
    expect(logs.stderr).toMatch(/Z warn\n$/);
    const ex = await docker(["exec", "life", "sh", "-c", "echo in-exec; exit 5"]);
    expect(ex.code).toBe(5);
    expect(ex.stdout).toBe("in-exec\n");
    const exIn = await docker(["exec", "-i", "life", "cat"], { stdin: "via exec\n" });
    expect(exIn.stdout).toBe("via exec\n");
    const top = await docker(["top", "life"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("sleep 1000");
    const stats = await docker(["stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "life"]);
    expect(stats.stdout.trim()).toBe("life 1");
    const stop = await docker(["stop", "-t", "1", "life"]);
    expect(stop.code).toBe(0);
    const stopped = await inspect("life");
    expect(stopped.State.Status).toBe("exited");
    expect(stopped.State.ExitCode).toBe(137); // sleep as PID 1 ignores SIGTERM
    // Logs survive the exit.
    expect((await docker(["logs", "life"])).stdout).toBe("started\n");
    const execStopped = await d.api(`/containers/${id}/exec`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ Cmd: ["true"] }) });
    expect(execStopped.status).toBe(409);
    expect((await docker(["rm", "life"])).code).toBe(0);
    expect((await d.api(`/containers/${id}/json`)).status).toBe(404);
  });

  test("start -a, attach to a running container, restart, update, exec -it with a size", async () => {
    await docker(["create", "--name", "sa", "--network", "none", IMG, "sh", "-c", "echo hi-start; exit 2"]);
    const sa = await docker(["start", "-a", "sa"]);
    expect(sa.stdout).toBe("hi-start\n");
    expect(sa.code).toBe(2);
    // -i: the process waits on stdin, so attach joins it running; attach carries stdin in and output back.
    // Stdin stays open until the container is done: as dockerd does, an attach ends when the
    // client's stdin ends (the container has no StdinOnce), and its output with it.
    await docker(["run", "-d", "-i", "--name", "att2", "--network", "none", IMG, "sh", "-c", "read x; echo got $x"]);
    const at2 = Bun.spawn(["docker", "-H", d.dockerHost, "attach", "att2"], { stdin: "pipe", stdout: "pipe", stderr: "ignore" });
    const killer = setTimeout(() => at2.kill("SIGKILL"), 30_000);
    at2.stdin.write("hello\n");
    await at2.stdin.flush();
    expect(await new Response(at2.stdout).text()).toBe("got hello\n");
    clearTimeout(killer);
    await at2.stdin.end();
    expect(await at2.exited).toBe(0);
    await docker(["run", "-d", "--name", "rs", "--network", "none", IMG, "sleep", "1000"]);
    const pid1 = (await inspect("rs")).State.Pid;
    expect((await docker(["restart", "-t", "0", "rs"])).code).toBe(0);
    const after = await inspect("rs");
    expect(after.State.Running).toBe(true);
    expect(after.State.Pid).not.toBe(pid1);
    expect((await docker(["update", "--memory", "64m", "--memory-swap", "128m", "rs"])).code).toBe(0);
    expect((await inspect("rs")).HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect((await docker(["exec", "rs", "sh", "-c", MEMORY_LIMIT])).stdout.trim()).toBe(String(64 * 1024 * 1024));
    const size = await run(["script", "-qec", `stty rows 31 cols 101; docker -H ${d.dockerHost} exec -it rs stty size`, "/dev/null"]);
    expect(size.stdout).toContain("31 101");
    await docker(["rm", "-f", "sa", "att2", "rs"]);
  });

  test("logs --follow streams until the container exits; --tail and --since", async () => {
    await docker(["run", "-d", "--name", "follow", "--network", "none", IMG, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"]);
    const f = await docker(["logs", "-f", "follow"]);
    expect(f.stdout).toBe("line1\nline2\nline3\n");
    expect((await docker(["logs", "--tail", "1", "follow"])).stdout).toBe("line3\n");
    expect((await docker(["logs", "--since", String(Math.floor(Date.now() / 1000) + 60), "follow"])).stdout).toBe("");
    await docker(["rm", "follow"]);
  });

  test("wait returns the exit code; kill sends signals; pause and unpause; rename", async () => {
    await docker(["run", "-d", "--name", "w1", "--network", "none", IMG, "sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.1; done"]);
    const waiting = docker(["wait", "w1"]);
    expect((await docker(["pause", "w1"])).code).toBe(0);
    expect((await inspect("w1")).State.Status).toBe("paused");
    expect((await docker(["unpause", "w1"])).code).toBe(0);
    expect((await docker(["rename", "w1", "w2"])).code).toBe(0);
    expect((await docker(["kill", "-s", "TERM", "w2"])).code).toBe(0);
    const w = await waiting;
    expect(w.stdout.trim()).toBe("42");
    const killStopped = await docker(["kill", "w2"]);
    expect(killStopped.code).not.toBe(0);
    expect(killStopped.stderr).toContain("is not running");
    await docker(["rm", "w2"]);
  });

  test("restart policies: on-failure:N retries N times; always keeps restarting; stop ends it", async () => {
    await docker(["run", "-d", "--name", "onfail", "--restart", "on-failure:2", "--network", "none", IMG, "sh", "-c", "exit 3"]);
    const final = await waitFor("on-failure retries", async () => {
      const i = await inspect("onfail");
      return i.State.Status === "exited" && i.RestartCount === 2 ? i : undefined;
    });
    expect(final.State.ExitCode).toBe(3);
    await docker(["run", "-d", "--name", "always", "--restart", "always", "--network", "none", IMG, "sh", "-c", "sleep 0.2; exit 1"]);
    await waitFor("always restarts", async () => ((await inspect("always")).RestartCount >= 2 ? true : undefined));
    expect((await docker(["stop", "always"])).code).toBe(0);
    const count = (await inspect("always")).RestartCount;
    expect((await inspect("always")).State.Running).toBe(false);
    await Bun.sleep(600);
    expect((await inspect("always")).RestartCount).toBe(count);
    await docker(["rm", "-f", "onfail", "always"]);
  });

  test("a stop between an exit and its restart ends the restarts", async () => {
    // The record says "exited" while the runtime is released (seconds in VM mode, where
    // this window is hit every time), and the restart policy applies after that: a stop
    // in between must cancel the restart to come, not answer "not running".
    await docker(["run", "-d", "--name", "between", "--restart", "always", "--network", "none", IMG, "sh", "-c", "sleep 0.2; exit 1"]);
    let seen = "";
    for (let i = 0; i < 400 && seen !== "exited"; i++) seen = (await docker(["inspect", "-f", "{{.State.Status}}", "between"])).stdout.trim();
    expect((await docker(["stop", "between"])).code).toBe(0);
    const after = (await inspect("between")).State;
    expect(after.Running).toBe(false);
    const count = (await inspect("between")).RestartCount;
    // Longer than a restart takes here (the policy's first delay is 100 ms; a VM start a few seconds).
    await Bun.sleep(IN_VM ? 8000 : 1000);
    const later = await inspect("between");
    expect(later.State.Status).toBe("exited");
    expect(later.RestartCount).toBe(count);
    await docker(["rm", "-f", "between"]);
  });

  test("rm of a running container needs -f; prune removes stopped ones", async () => {
    await docker(["run", "-d", "--name", "busy", "--network", "none", IMG, "sleep", "1000"]);
    const r = await docker(["rm", "busy"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("container is running");
    expect((await docker(["rm", "-f", "busy"])).code).toBe(0);
    await docker(["create", "--name", "prune-me", "--label", "p=1", "--network", "none", IMG, "true"]);
    const p = await docker(["container", "prune", "-f", "--filter", "label=p=1"]);
    expect(p.code).toBe(0);
    expect((await docker(["ps", "-aq", "--filter", "name=prune-me"])).stdout.trim()).toBe("");
  });

  test("ps filters: status, name, label, ancestor, exited", async () => {
    await docker(["run", "--name", "f-exit", "--label", "team=x", "--network", "none", IMG, "sh", "-c", "exit 4"]);
    await docker(["run", "-d", "--name", "f-run", "--network", "none", IMG, "sleep", "1000"]);
    const names = async (...args: string[]) => (await docker(["ps", "-a", "--format", "{{.Names}}", ...args])).stdout.trim().split("\n").filter(Boolean).sort();
    expect(await names("--filter", "status=exited", "--filter", "name=f-")).toEqual(["f-exit"]);
    expect(await names("--filter", "status=running", "--filter", "name=f-")).toEqual(["f-run"]);
    expect(await names("--filter", "label=team=x")).toEqual(["f-exit"]);
    expect(await names("--filter", "exited=4")).toEqual(["f-exit"]);
    expect(await names("--filter", `ancestor=${IMG}`, "--filter", "name=f-")).toEqual(["f-exit", "f-run"]);
    await docker(["rm", "-f", "f-exit", "f-run"]);
  });
});

describe("docker cp, diff, export", () => {
  test("copies files both ways, into running and stopped containers", async () => {
    await docker(["run", "-d", "--name", "cp1", "--network", "none", IMG, "sleep", "1000"]);
    const src = join(work, "hello.txt");
    writeFileSync(src, "hello from host\n");
    expect((await docker(["cp", src, "cp1:/tmp/"])).code).toBe(0);
    expect((await docker(["exec", "cp1", "cat", "/tmp/hello.txt"])).stdout).toBe("hello from host\n");
    const out = join(work, "passwd.out");
    expect((await docker(["cp", "cp1:/etc/passwd", out])).code).toBe(0);
    expect(readFileSync(out, "utf8")).toStartWith("root:x:0:0");
    const diff = await docker(["diff", "cp1"]);
    expect(diff.stdout).toContain("A /tmp/hello.txt");
    await docker(["stop", "-t", "0", "cp1"]);
    expect((await docker(["cp", src, "cp1:/hello2.txt"])).code).toBe(0);
    const back = join(work, "hello2.out");
    expect((await docker(["cp", "cp1:/hello2.txt", back])).code).toBe(0);
    expect(readFileSync(back, "utf8")).toBe("hello from host\n");
    const tar = join(work, "export.tar");
    expect((await docker(["export", "-o", tar, "cp1"])).code).toBe(0);
    const list = Bun.spawnSync(["tar", "tf", tar]).stdout.toString();
    expect(list).toContain("./bin/busybox");
    expect(list).toContain("./hello2.txt");
    await docker(["rm", "-f", "cp1"]);
  });

  test("symlinks cannot lead docker cp out of the container root", async () => {
    await docker(["run", "-d", "--name", "cp2", "--network", "none", IMG, "sh", "-c", "ln -s / /escape; ln -s ../../../../ /tmp/up; exec sleep 1000"]);
    await waitFor("symlinks", async () => ((await docker(["exec", "cp2", "ls", "/escape"])).code === 0 ? true : undefined));
    const marker = join(work, "marker-should-not-exist");
    const src = join(work, "evil");
    writeFileSync(src, "evil\n");
    // Writing through an absolute symlink lands inside the container.
    const dest = `/escape${work}/`;
    await docker(["exec", "cp2", "mkdir", "-p", work]);
    expect((await docker(["cp", src, `cp2:${dest}`])).code).toBe(0);
    expect((await docker(["exec", "cp2", "cat", `${work}/evil`])).stdout).toBe("evil\n");
    expect(existsSync(join(work, "evil"))).toBe(true); // the host original, untouched
    expect(readFileSync(join(work, "evil"), "utf8")).toBe("evil\n");
    // Reading /tmp/up/etc/hostname resolves inside the container, never the host's file.
    const out = join(work, "hostname.out");
    expect((await docker(["cp", "cp2:/tmp/up/etc/hostname", out])).code).toBe(0);
    expect(readFileSync(out, "utf8").trim()).toBe((await inspect("cp2")).Id.slice(0, 12));
    const missing = await docker(["cp", "cp2:/tmp/up/../../nope", marker]);
    expect(missing.code).not.toBe(0);
    expect(existsSync(marker)).toBe(false);
    await docker(["rm", "-f", "cp2"]);
  });
});

describe("networking through netd", () => {
  test("the default network gives the container an address that inspect reports", async () => {
    await docker(["run", "-d", "--name", "net1", IMG, "sleep", "1000"]);
    const info = await inspect("net1");
    const ip = info.NetworkSettings.Networks.bridge?.IPAddress;
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(info.NetworkSettings.IPAddress).toBe(ip);
    const addr = await docker(["exec", "net1", "ip", "-4", "addr", "show", "eth0"]);
    expect(addr.stdout).toContain(`inet ${ip}/`);
    // --network host is the host's namespace, or in VM mode the engine machine's (as
    // Docker Desktop's is its VM's).
    const hostName = IN_VM ? "arcbox-engine" : readFileSync("/proc/sys/kernel/hostname", "utf8").trim();
    expect((await docker(["run", "--rm", "--network", "host", IMG, "hostname"])).stdout.trim()).toBe(hostName);
    await docker(["rm", "-f", "net1"]);
    // Once removed, a new container can have the address again (netd detached it).
    expect((await docker(["ps", "-aq", "--filter", "name=net1"])).stdout.trim()).toBe("");
  });
});

describe("volumes through fsd", () => {
  test("a named volume outlives its containers; rm -v removes anonymous ones", async () => {
    expect((await docker(["run", "--rm", "-v", "cvol:/data", "--network", "none", IMG, "sh", "-c", "echo persisted > /data/f"])).code).toBe(0);
    expect((await docker(["run", "--rm", "-v", "cvol:/data", "--network", "none", IMG, "cat", "/data/f"])).stdout).toBe("persisted\n");
    await docker(["run", "--name", "anon", "-v", "/anon", "--network", "none", IMG, "true"]);
    const [m] = (await inspect("anon")).Mounts;
    expect(m.Type).toBe("volume");
    expect(m.Destination).toBe("/anon");
    expect((await docker(["volume", "ls", "-q"])).stdout).toContain(m.Name);
    expect((await docker(["rm", "-v", "anon"])).code).toBe(0);
    expect((await docker(["volume", "ls", "-q"])).stdout).not.toContain(m.Name);
    expect((await docker(["volume", "ls", "-q"])).stdout).toContain("cvol");
    await docker(["volume", "rm", "cvol"]);
  });
});

describe("docker commit", () => {
  test("a container's changes become an image that runs", async () => {
    await docker(["run", "-d", "--name", "cm", "--network", "none", IMG, "sh", "-c", "echo committed > /file; exec sleep 1000"]);
    await waitFor("file", async () => ((await docker(["exec", "cm", "cat", "/file"])).stdout === "committed\n" ? true : undefined));
    const c = await docker(["commit", "-c", 'CMD ["cat", "/file"]', "cm", "committed-image:1"]);
    expect(c.code).toBe(0);
    expect(c.stdout.trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((await inspect("cm")).State.Status).toBe("running"); // unpaused after the commit
    const r = await docker(["run", "--rm", "--network", "none", "committed-image:1"]);
    expect(r.stdout).toBe("committed\n");
    await docker(["rm", "-f", "cm"]);
  });
});

describe("events", () => {
  test("docker events reports the lifecycle with filters", async () => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    await docker(["run", "--rm", "--name", "ev1", "--network", "none", IMG, "true"]);
    const r = await docker(["events", "--since", since, "--until", String(Math.floor(Date.now() / 1000) + 1), "--filter", "container=ev1", "--format", "{{.Action}}"]);
    const actions = r.stdout.trim().split("\n");
    expect(actions).toEqual(["create", "attach", "start", "die", "destroy"]);
    const die = await docker([
      "events",
      "--since",
      since,
      "--until",
      String(Math.floor(Date.now() / 1000) + 1),
      "--filter",
      "event=die",
      "--filter",
      "container=ev1",
      "--format",
      "{{json .Actor.Attributes}}",
    ]);
    expect(JSON.parse(die.stdout.trim()).exitCode).toBe("0");
  });
});

describe("events of images, networks and volumes", () => {
  test("create/destroy, tag/untag and connect/disconnect show up with type filters", async () => {
    const since = String(Math.floor(Date.now() / 1000) - 1);
    expect((await docker(["volume", "create", "evvol"])).code).toBe(0);
    expect((await docker(["volume", "rm", "evvol"])).code).toBe(0);
    expect((await docker(["network", "create", "evnet"])).code).toBe(0);
    expect((await docker(["run", "--rm", "--network", "evnet", "--name", "evc", IMG, "true"])).code).toBe(0);
    expect((await docker(["network", "rm", "evnet"])).code).toBe(0);
    expect((await docker(["tag", IMG, "evimg:1"])).code).toBe(0);
    expect((await docker(["rmi", "evimg:1"])).code).toBe(0);
    const until = String(Math.floor(Date.now() / 1000) + 1);
    const ev = async (...filters: string[]) =>
      (await docker(["events", "--since", since, "--until", until, ...filters.flatMap((f) => ["--filter", f]), "--format", "{{.Type}} {{.Action}}"])).stdout.trim().split("\n");
    expect(await ev("type=volume", "volume=evvol")).toEqual(["volume create", "volume destroy"]);
    expect(await ev("type=network", "network=evnet")).toEqual(["network create", "network connect", "network disconnect", "network destroy"]);
    expect(await ev("type=image", "event=tag")).toContain("image tag");
    expect(await ev("type=image", "event=untag")).toContain("image untag");
  });
});

describe("info", () => {
  test("docker info counts containers from the records", async () => {
    await docker(["create", "--name", "counted", "--network", "none", IMG, "true"]);
    const info = JSON.parse((await docker(["info", "--format", "{{json .}}"])).stdout);
    expect(info.Containers).toBeGreaterThanOrEqual(1);
    const sized = JSON.parse((await docker(["container", "inspect", "-s", "counted"])).stdout)[0];
    expect(sized.SizeRootFs).toBeGreaterThan(500_000);
    expect(info.ContainersStopped).toBeGreaterThanOrEqual(1);
    await docker(["rm", "counted"]);
  });

  test("ps -s, inspect --size and system df measure the writable layer", async () => {
    const MIB = 1 << 20;
    expect((await docker(["run", "--name", "sized", "--network", "none", IMG, "sh", "-c", "head -c 1048576 /dev/zero > /big"])).code).toBe(0);
    const c = JSON.parse((await docker(["container", "inspect", "--size", "sized"])).stdout)[0];
    // The upper dir is where the container ran: the host's disk, or the engine machine's.
    expect(c.SizeRw).toBeGreaterThanOrEqual(MIB);
    expect(c.SizeRw).toBeLessThan(2 * MIB);
    expect(c.SizeRootFs).toBeGreaterThan(c.SizeRw + 500_000);
    const listed = (await (await d.api("/containers/json?all=1&size=1")).json()) as { Names: string[]; SizeRw: number; SizeRootFs: number }[];
    const row = listed.find((r) => r.Names.includes("/sized"));
    expect(row?.SizeRw).toBe(c.SizeRw);
    expect(row?.SizeRootFs).toBe(c.SizeRootFs);
    // "1.05MB (virtual 5.3MB)"
    expect((await docker(["ps", "-a", "-s", "--filter", "name=sized", "--format", "{{.Size}}"])).stdout).toMatch(/^1\.05MB \(virtual /);
    const df = (await (await d.api("/system/df")).json()) as { Containers: { Names: string[]; SizeRw: number }[] };
    expect(df.Containers.find((r) => r.Names.includes("/sized"))?.SizeRw).toBe(c.SizeRw);
    const dfCli = (await docker(["system", "df", "--format", "{{.Type}} {{.TotalCount}} {{.Size}}"])).stdout;
    expect(dfCli).toMatch(/^Containers [1-9]\d* (?!0B)\d/m);
    await docker(["rm", "sized"]);
  });
});

describe("no leftovers", () => {
  test("failed creates and --rm runs leave no snapshot, container dir or record behind", async () => {
    await docker(["run", "--rm", "--mount", "type=bind,source=/nonexistent-arcbox,target=/x", IMG, "true"]);
    await docker(["run", "--rm", "--network", "none", IMG, "nope"]);
    await docker(["run", "--rm", IMG, "true"]);
    const ids = (await docker(["ps", "-aq", "--no-trunc"])).stdout.split("\n").filter(Boolean).sort();
    const { readdirSync } = await import("node:fs");
    const dirs = (sub: string) => (existsSync(join(d.home, "data", sub)) ? readdirSync(join(d.home, "data", sub)).sort() : []);
    expect(dirs("apid/containers")).toEqual(ids);
    expect(dirs("imaged/containers")).toEqual(ids);
  });
});
