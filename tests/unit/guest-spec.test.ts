/** Unit tests of the guest agent's pure parts: spec building, users, caps, framing, errors. */
import { afterAll, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { CreateContainerRequestSchema } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { DOCKER_DEFAULT_CAPS, resolveCapabilities } from "../../guest/core/capabilities.ts";
import { normalizeSignal } from "../../guest/core/container-runtime.ts";
import { buildOciSpec, mergeEnv, ociResources } from "../../guest/core/oci-spec.ts";
import { parsePsOutput } from "../../guest/core/top.ts";
import { resolveUser } from "../../guest/core/user-resolver.ts";
import { FrameDecoder, encodeFrame } from "../../guest/protocol/frames.ts";
import { classifyRuncError, inRuncWording } from "../../guest/platform/runc.ts";
import { overlayOptions } from "../../guest/platform/overlay.ts";
import { statsV2 } from "../../guest/core/stats.ts";
import { defaultSeccomp } from "../../guest/core/seccomp.ts";

function rootfs(): string {
  const dir = mkdtempSync(join(tmpdir(), "guest-spec-"));
  mkdirSync(join(dir, "etc"));
  writeFileSync(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nnobody:x:65534:65534::/nonexistent:/bin/false\n");
  writeFileSync(join(dir, "etc/group"), "root:x:0:\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n");
  return dir;
}

describe("resolveUser", () => {
  const dir = rootfs();
  test("names, numbers and groups", () => {
    expect(resolveUser(dir, "")).toEqual({ uid: 0, gid: 0, additionalGids: [], home: "/root" });
    expect(resolveUser(dir, "app")).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29], home: "/home/app" });
    expect(resolveUser(dir, "app:wheel")).toMatchObject({ uid: 1000, gid: 10, additionalGids: [] });
    expect(resolveUser(dir, "1000:5")).toMatchObject({ uid: 1000, gid: 5 });
    expect(resolveUser(dir, "4242")).toEqual({ uid: 4242, gid: 0, additionalGids: [], home: "/" });
  });
  test("unknown names are invalid arguments", () => {
    expect(() => resolveUser(dir, "ghost")).toThrow(/unable to find user ghost/);
    expect(() => resolveUser(dir, "app:ghosts")).toThrow(/unable to find group ghosts/);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
});

describe("capabilities", () => {
  test("Docker's defaults, add and drop", () => {
    expect(resolveCapabilities([], [], false).sort()).toEqual([...DOCKER_DEFAULT_CAPS].sort());
    const caps = resolveCapabilities(["net_admin", "CAP_SYS_PTRACE"], ["chown", "CAP_KILL"], false);
    expect(caps).toContain("CAP_NET_ADMIN");
    expect(caps).toContain("CAP_SYS_PTRACE");
    expect(caps).not.toContain("CAP_CHOWN");
    expect(caps).not.toContain("CAP_KILL");
    expect(resolveCapabilities(["NET_ADMIN"], ["ALL"], false)).toEqual(["CAP_NET_ADMIN"]);
    expect(() => resolveCapabilities(["BOGUS"], [], false)).toThrow(/unknown capability/);
  });
});

describe("OCI spec", () => {
  const dir = rootfs();
  const req = create(CreateContainerRequestSchema, {
    id: "c1",
    hostname: "h1",
    init: true,
    hostsPath: "/x/hosts",
    process: { args: ["sh"], env: ["A=1"], user: "app", tty: true },
    rootfs: { lowerDirs: ["/l"], readonly: true },
    mounts: [
      { destination: "/data/sub", type: "bind", source: "/src2" },
      { destination: "/data", type: "bind", source: "/src", options: ["ro"] },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["size=1g"] },
    ],
    resources: { memoryBytes: 1n << 30n, nanoCpus: 1_500_000_000n, pidsLimit: 100n },
    netnsPath: "/run/netns/n1",
  });
  const spec = buildOciSpec(req, { rootfs: dir, cgroupsPath: "/arcbox/c1", netnsPath: "/run/netns/n1", initBinary: "/usr/bin/tini-static" });
  test("process: init, user, env, terminal", () => {
    expect(spec.process.args).toEqual(["/sbin/docker-init", "--", "sh"]);
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29] });
    expect(spec.process.env).toEqual(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "HOSTNAME=h1", "HOME=/home/app", "TERM=xterm"]);
    expect(spec.process.terminal).toBe(true);
    expect(spec).not.toHaveProperty("process.rlimits");
  });
  test("mounts: defaults, user mounts by depth, replacements, init and hosts binds", () => {
    const dests = spec.mounts.map((m) => m.destination);
    expect(dests.filter((d) => d === "/dev/shm")).toHaveLength(1);
    expect(spec.mounts.find((m) => m.destination === "/dev/shm")!.options).toEqual(["size=1g"]);
    expect(dests.indexOf("/data")).toBeLessThan(dests.indexOf("/data/sub"));
    expect(spec.mounts.find((m) => m.destination === "/data")!.options).toEqual(["ro", "rbind"]);
    expect(spec.mounts.find((m) => m.destination === "/sbin/docker-init")).toMatchObject({ source: "/usr/bin/tini-static", options: ["rbind", "rprivate", "ro"] });
    expect(spec.mounts.find((m) => m.destination === "/etc/hosts")).toMatchObject({ source: "/x/hosts" });
  });
  test("linux: namespaces, cgroups, resources, masks; readonly root", () => {
    expect(spec.root).toEqual({ path: "rootfs", readonly: true });
    expect(spec.linux.namespaces).toContainEqual({ type: "network", path: "/run/netns/n1" });
    expect(spec.linux.cgroupsPath).toBe("/arcbox/c1");
    expect(spec.linux.resources).toMatchObject({ memory: { limit: 1 << 30 }, cpu: { period: 100000, quota: 150000 }, pids: { limit: 100 } });
    expect(spec.linux.maskedPaths).toContain("/proc/kcore");
    expect(spec.linux.readonlyPaths).toContain("/proc/sys");
  });
  test("a cgroup namespace only when asked (cgroup v2 machines), as dockerd's default there", () => {
    expect(spec.linux.namespaces.map((n) => n.type)).not.toContain("cgroup");
    const v2 = buildOciSpec(req, { rootfs: dir, cgroupsPath: "/arcbox/c1", initBinary: "/t", cgroupNamespace: true });
    expect(v2.linux.namespaces).toContainEqual({ type: "cgroup" });
  });
  test("host network: no network or uts namespace, no hostname", () => {
    const host = buildOciSpec(create(CreateContainerRequestSchema, { ...req, hostNetwork: true }), { rootfs: dir, cgroupsPath: "/arcbox/c1", initBinary: "/t" });
    expect(host.linux.namespaces.map((n) => n.type)).toEqual(["pid", "ipc", "mount"]);
    expect(host).not.toHaveProperty("hostname");
  });
  test("update resources carry no swap default", () => {
    expect(ociResources(create(CreateContainerRequestSchema, { resources: { memoryBytes: 100n } }).resources)).toMatchObject({ memory: { limit: 100 } });
    expect(mergeEnv(["A=1", "B=2"], ["B=3", "C=4"])).toEqual(["A=1", "B=3", "C=4"]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
});

describe("small parsers", () => {
  test("frames survive arbitrary chunking", () => {
    const a = encodeFrame({ k: "req", id: 1, method: "x", body: new Uint8Array([1, 2, 3]) });
    const b = encodeFrame({ k: "evt", body: new Uint8Array(70_000) });
    const all = Buffer.concat([a, b]);
    const d = new FrameDecoder();
    const got: unknown[] = [];
    for (let i = 0; i < all.length; i += 7) got.push(...d.push(all.subarray(i, i + 7)));
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({ k: "req", id: 1, method: "x" });
    expect((got[1] as { body: Uint8Array }).body.length).toBe(70_000);
  });
  test("ps output filtered by pid, commands with spaces kept whole", () => {
    const out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init splash\nroot 42 1 0 10:00 ? 00:00:00 sleep 1000\n";
    const top = parsePsOutput(out, [42]);
    expect(top.titles).toEqual(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]);
    expect(top.processes.map((p) => p.columns)).toEqual([["root", "42", "1", "0", "10:00", "?", "00:00:00", "sleep 1000"]]);
  });
  test("signals and runc errors", () => {
    expect(normalizeSignal("term")).toBe("SIGTERM");
    expect(normalizeSignal("9")).toBe("9");
    expect(normalizeSignal("")).toBe("SIGKILL");
    expect(classifyRuncError('runc create failed: unable to start container process: exec: "x": executable file not found in $PATH')).toBe("not_found");
    expect(classifyRuncError('runc create failed: unable to start container process: exec: "/etc/passwd": permission denied')).toBe("permission_denied");
    expect(classifyRuncError("container not running")).toBe("failed_precondition");
    // crun, a docker stop racing the process's own exit: stop must not fail on it.
    expect(classifyRuncError("kill container: No such process")).toBe("failed_precondition");
    expect(classifyRuncError('runc create failed: unable to start container process: exec: "/no/such": stat /no/such: no such file or directory')).toBe("not_found");
    expect(classifyRuncError('runc create failed: unable to start container process: error during container init: error mounting "/x" to rootfs at "/data": stat /x: no such file or directory')).toBe(
      "invalid_argument",
    );
  });
  test("crun's start failures in runc's words (the docker CLI's 127/126)", () => {
    const notFound = inRuncWording("executable file `nonexist` not found in $PATH: No such file or directory");
    expect(notFound).toBe('unable to start container process: exec: "nonexist": executable file not found in $PATH');
    expect(classifyRuncError(notFound)).toBe("not_found");
    const denied = inRuncWording("open executable: Permission denied", "/etc/passwd");
    expect(denied).toBe('unable to start container process: exec: "/etc/passwd": permission denied');
    expect(classifyRuncError(denied)).toBe("permission_denied");
    expect(inRuncWording("open executable: Operation not permitted", "/etc")).toBe('unable to start container process: exec: "/etc": permission denied');
    expect(inRuncWording("exec `/x.sh`: No such file or directory")).toBe('unable to start container process: exec: "/x.sh": no such file or directory');
    // runc's own wording is left alone.
    const runc = 'runc create failed: unable to start container process: exec: "x": executable file not found in $PATH';
    expect(inRuncWording(runc, "x")).toBe(runc);
  });
  test("overlay options reject separators in paths", () => {
    expect(overlayOptions(create(CreateContainerRequestSchema, { rootfs: { lowerDirs: ["/a", "/b"], upperDir: "/u", workDir: "/w" } }).rootfs!)).toBe("lowerdir=/a:/b,upperdir=/u,workdir=/w");
    expect(() => overlayOptions(create(CreateContainerRequestSchema, { rootfs: { lowerDirs: ["/a,b"] } }).rootfs!)).toThrow(/contains/);
  });
});

describe("cgroup v2 stats", () => {
  test("Docker's v2 shape from unified-hierarchy files", () => {
    const root = mkdtempSync(join(tmpdir(), "guest-cg2-"));
    const cg = "/arcbox/c1";
    mkdirSync(join(root, cg), { recursive: true });
    const files: Record<string, string> = {
      "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 20\n",
      "memory.current": "4096\n",
      "memory.max": "1048576\n",
      "memory.stat": "anon 100\nfile 200\n",
      "pids.current": "3\n",
      "pids.max": "max\n",
      "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    };
    for (const [f, v] of Object.entries(files)) writeFileSync(join(root, cg, f), v);
    // The controller argument is a path under /sys/fs/cgroup: point it at the fake root.
    const s = statsV2(cg, relative("/sys/fs/cgroup", root));
    expect(s.cpu_stats.cpu_usage).toEqual({ total_usage: 1_500_000, usage_in_kernelmode: 500_000, usage_in_usermode: 1_000_000 });
    expect(s.cpu_stats.throttling_data).toEqual({ periods: 4, throttled_periods: 1, throttled_time: 20_000 });
    expect(s.memory_stats).toEqual({ usage: 4096, stats: { anon: 100, file: 200 }, limit: 1048576 });
    expect(s.pids_stats).toEqual({ current: 3 });
    expect(s.blkio_stats.io_service_bytes_recursive).toEqual([
      { major: 8, minor: 0, op: "read", value: 10 },
      { major: 8, minor: 0, op: "write", value: 20 },
    ]);
    rmSync(root, { recursive: true, force: true });
  });
});

describe("seccomp", () => {
  const denied = (caps: string[]) =>
    new Set(
      defaultSeccomp(caps)
        .syscalls.filter((r) => !("args" in r) && r.errnoRet === 1)
        .flatMap((r) => r.names),
    );
  test("dangerous calls fail unless their capability is held", () => {
    const base = denied(DOCKER_DEFAULT_CAPS);
    for (const c of ["mount", "unshare", "setns", "keyctl", "init_module", "reboot", "bpf", "open_by_handle_at"]) expect(base.has(c)).toBe(true);
    for (const c of ["read", "clone", "execve", "chown", "kill"]) expect(base.has(c)).toBe(false);
    const admin = denied([...DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"]);
    expect(admin.has("mount")).toBe(false);
    expect(admin.has("keyctl")).toBe(true); // always denied
    expect(defaultSeccomp(DOCKER_DEFAULT_CAPS).syscalls.filter((r) => "args" in r)).toHaveLength(7);
    expect(defaultSeccomp([...DOCKER_DEFAULT_CAPS, "CAP_SYS_ADMIN"]).syscalls.filter((r) => "args" in r)).toHaveLength(0);
  });
});
