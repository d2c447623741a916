/**
 * `docker exec` through the shim's direct join (native/shim/exec-direct.c) must leave the
 * process exactly as runc leaves a container's init: same cgroups and namespaces, user
 * and groups, capability sets, seccomp filter, cwd, env and TTY; with runc's errors
 * (127/126). The home directory is long on purpose: stdio socket paths must still fit.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type TestDaemon, run } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  // ~50 chars of home: run/io/<64-char id>.c would not fit in a Unix socket path.
  fx = await startBusyboxDaemon("arcbox-exec-direct-with-a-rather-long-home-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

const docker = (args: string[], opts?: Parameters<TestDaemon["docker"]>[1]) => d.docker(args, opts);

async function must(args: string[], opts?: Parameters<TestDaemon["docker"]>[1]): Promise<string> {
  const r = await docker(args, opts);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The identity and confinement lines of /proc/self/status. */
const STATUS = ["grep", "-E", "^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):", "/proc/self/status"];

/** Starts a long-running container with `opts` and waits until it runs. */
async function started(name: string, opts: string[]): Promise<void> {
  await must(["run", "-d", "--name", name, "--network", "none", ...opts, IMG, "sleep", "100000"]);
}

describe("docker exec joins the container like runc", () => {
  test("identity, capabilities and seccomp match the container's init for the same options", async () => {
    for (const [name, opts] of [
      ["plain", []],
      ["user", ["-u", "1000:1000"]],
      ["caps", ["--cap-drop", "CHOWN", "--cap-drop", "NET_RAW", "--cap-add", "SYS_PTRACE"]],
      ["priv", ["--privileged"]],
    ] as [string, string[]][]) {
      const viaRunc = await must(["run", "--rm", "--network", "none", ...opts, IMG, ...STATUS]);
      await started(`id-${name}`, opts);
      const viaExec = await must(["exec", `id-${name}`, ...STATUS]);
      expect(viaExec).toBe(viaRunc);
      expect(viaExec).toContain("Seccomp:");
      expect(viaExec).toMatch(name === "priv" ? /Seccomp:\s+0/ : /Seccomp:\s+2/);
    }
  });

  test("an exec with its own user: uid, gid and supplementary groups as docker run -u", async () => {
    await started("other-user", []);
    const viaRunc = await must(["run", "--rm", "--network", "none", "-u", "nobody", IMG, "id"]);
    expect(await must(["exec", "-u", "nobody", "other-user", "id"])).toBe(viaRunc);
    // Non-root: no effective capabilities left after execve.
    expect(await must(["exec", "-u", "1000", "other-user", "grep", "CapEff", "/proc/self/status"])).toMatch(/CapEff:\s+0+\n/);
  });

  test("same namespaces and cgroups as the init, its root, cwd and env", async () => {
    await started("ns", ["-e", "FROM_RUN=1"]);
    const script = "for n in cgroup ipc mnt net pid uts; do echo $n $(readlink /proc/1/ns/$n) $(readlink /proc/self/ns/$n); done";
    for (const line of (await must(["exec", "ns", "sh", "-c", script])).trim().split("\n")) {
      const [, init, self] = line.split(" ");
      expect(self).toBe(init!);
    }
    expect(await must(["exec", "ns", "cat", "/proc/self/cgroup"])).toBe(await must(["exec", "ns", "cat", "/proc/1/cgroup"]));
    // The exec sees the container's pid namespace (its init is pid 1) and rootfs.
    expect((await must(["exec", "ns", "cat", "/proc/1/cmdline"])).replaceAll("\0", " ").trim()).toBe("sleep 100000");
    expect(await must(["exec", "-w", "/tmp", "-e", "FROM_EXEC=2", "ns", "sh", "-c", "pwd; echo $FROM_RUN $FROM_EXEC; echo $HOME"])).toBe("/tmp\n1 2\n/root\n");
    const badCwd = await docker(["exec", "-w", "/no/such/dir", "ns", "true"]);
    expect(badCwd.code).not.toBe(0);
    expect(badCwd.stdout + badCwd.stderr).toContain('chdir to cwd ("/no/such/dir")');
  });

  test("the container's seccomp filter applies to the exec", async () => {
    await started("sc", []);
    const r = await docker(["exec", "sc", "unshare", "-n", "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
    // With CAP_SYS_ADMIN the container's filter allows it, and so does the exec's.
    await started("sc-admin", ["--cap-add", "SYS_ADMIN"]);
    expect((await docker(["exec", "sc-admin", "unshare", "-n", "true"])).code).toBe(0);
  });

  test("not found and not executable both exit 126 (as dockerd's exec), with runc's messages", async () => {
    await started("errs", []);
    const nf = await docker(["exec", "errs", "nope"]);
    expect(nf.code).toBe(126);
    // As Docker: the runtime's error on the (upgraded) stream's stdout.
    expect(nf.stdout + nf.stderr).toContain('exec: "nope": executable file not found in $PATH');
    const denied = await docker(["exec", "errs", "/etc/passwd"]);
    expect(denied.code).toBe(126);
    expect(denied.stdout + denied.stderr).toContain("permission denied");
    expect((await docker(["exec", "errs", "sh", "-c", "exit 7"])).code).toBe(7);
  });

  test("exec -it: a pty from the container's devpts, with the client's size", async () => {
    await started("tty", []);
    const r = await run(["script", "-qec", `stty rows 27 cols 93; docker -H ${d.dockerHost} exec -it tty sh -c 'tty; stty size; echo $TERM'`, "/dev/null"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\/dev\/pts\/\d+\r?\n27 93\r?\nxterm/);
    const piped = await must(["exec", "-i", "tty", "cat"], { stdin: "through stdin\n" });
    expect(piped).toBe("through stdin\n");
  });
});
