/**
 * Create options real programs send, honoured as dockerd honours them: shared PID and
 * IPC namespaces (host and container:<id>), the host's UTS namespace, GroupAdd, MemorySwappiness, namespaced
 * Sysctls, SecurityOpt (no-new-privileges, seccomp unconfined or a profile,
 * label=disable), Ulimits (lowering only: this host grants no CAP_SYS_RESOURCE), the
 * runc runtime, default isolation, the local volume driver, the none and local log
 * drivers, Devices and DeviceCgroupRules.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readlinkSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { run, type TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;
let scratch: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-compat-opts-");
  d = fx.d;
  IMG = fx.image;
  scratch = mkdtempSync(join(tmpdir(), "arcbox-compat-opts-files-"));
  await must(["run", "-d", "--name", "owner", "--network", "none", "--ipc", "shareable", IMG, "sleep", "100000"]);
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

const json = { "Content-Type": "application/json" };

async function must(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** `docker run --rm` of a shell snippet with `opts`; its stdout. */
const sh = (opts: string[], script: string) => must(["run", "--rm", "--network", "none", ...opts, IMG, "sh", "-c", script]);

async function create(hostConfig: Record<string, unknown>): Promise<{ status: number; message?: string }> {
  const res = await d.api("/containers/create", { method: "POST", headers: json, body: JSON.stringify({ Image: IMG, Cmd: ["true"], HostConfig: { NetworkMode: "none", ...hostConfig } }) });
  const body = (await res.json()) as { Id?: string; message?: string };
  if (body.Id) await d.api(`/containers/${body.Id}?force=1`, { method: "DELETE" });
  return { status: res.status, message: body.message };
}

describe("shared namespaces", () => {
  test("--pid, --ipc, --uts host share the host's namespaces", async () => {
    expect(await sh(["--pid", "host"], "readlink /proc/self/ns/pid")).toBe(readlinkSync("/proc/self/ns/pid"));
    expect(await sh(["--pid", "host"], "test -d /proc/1 && cat /proc/1/comm")).toBe(readFileText("/proc/1/comm"));
    const shmFile = `/dev/shm/arcbox-compat-${process.pid}`;
    writeFileSync(shmFile, "host-shm\n");
    try {
      expect(await sh(["--ipc", "host"], `readlink /proc/self/ns/ipc; cat ${shmFile}`)).toBe(`${readlinkSync("/proc/self/ns/ipc")}\nhost-shm`);
    } finally {
      rmSync(shmFile, { force: true });
    }
    expect(await sh(["--uts", "host"], "readlink /proc/self/ns/uts; hostname")).toBe(`${readlinkSync("/proc/self/ns/uts")}\n${hostname()}`);
    // Without them: namespaces of its own.
    const own = await sh([], "for n in pid ipc uts; do readlink /proc/self/ns/$n; done");
    for (const n of ["pid", "ipc", "uts"]) expect(own).not.toContain(readlinkSync(`/proc/self/ns/${n}`));
  });

  test("container:<name> joins another container's PID and IPC namespaces", async () => {
    const ns = (await must(["exec", "owner", "sh", "-c", "for n in pid ipc; do readlink /proc/1/ns/$n; done"])).split("\n");
    const out = await sh(["--pid", "container:owner", "--ipc", "container:owner"], "for n in pid ipc; do readlink /proc/self/ns/$n; done; cat /proc/1/cmdline | tr '\\0' ' '");
    expect(out.split("\n")).toEqual([...ns, "sleep 100000"]);
    const view = JSON.parse(await must(["inspect", "--format", "{{json .HostConfig}}", await must(["create", "--pid", "container:owner", IMG, "true"])]));
    expect(view.PidMode).toMatch(/^container:[0-9a-f]{64}$/);
    // Joining a container that does not run fails at start, as dockerd's start does.
    await must(["create", "--name", "stopped-peer", "--network", "none", IMG, "true"]);
    const r = await d.docker(["run", "--rm", "--network", "none", "--pid", "container:stopped-peer", IMG, "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("cannot join PID of a non running container");
    expect((await create({ PidMode: "bogus" })).message).toBe("invalid PID mode: bogus");
    expect((await create({ UTSMode: "container:owner" })).message).toBe("invalid UTS mode: container:owner");
  });
});

function readFileText(path: string): string {
  return require("node:fs").readFileSync(path, "utf8").trim();
}

describe("process options", () => {
  test("--group-add by gid and by name, for the process and its execs", async () => {
    expect(await sh(["--group-add", "1234", "--group-add", "nogroup"], "id -G")).toBe("0 1234 65534");
    const id = await must(["run", "-d", "--network", "none", "--group-add", "4321", IMG, "sleep", "100000"]);
    expect(await must(["exec", id, "id", "-G"])).toBe("0 4321");
    const r = await d.docker(["run", "--rm", "--network", "none", "--group-add", "nosuchgroup", IMG, "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Unable to find group nosuchgroup");
  });

  test("--security-opt no-new-privileges, seccomp=unconfined, a seccomp profile, label=disable", async () => {
    expect(await sh([], "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t ' ' '")).toBe("NoNewPrivs: 0\nSeccomp: 2");
    const nnp = await must(["run", "-d", "--network", "none", "--security-opt", "no-new-privileges", IMG, "sleep", "100000"]);
    expect(await must(["exec", nnp, "grep", "NoNewPrivs", "/proc/self/status"])).toMatch(/NoNewPrivs:\s+1/);
    expect(await sh(["--security-opt", "no-new-privileges:true"], "grep NoNewPrivs /proc/self/status")).toMatch(/NoNewPrivs:\s+1/);
    expect(await sh(["--security-opt", "seccomp=unconfined"], "grep Seccomp: /proc/self/status")).toMatch(/Seccomp:\s+0/);
    expect(await sh(["--security-opt", "label=disable"], "echo ok")).toBe("ok");
    const profile = join(scratch, "no-mkdir.json");
    writeFileSync(
      profile,
      JSON.stringify({
        defaultAction: "SCMP_ACT_ALLOW",
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [
          { names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO" },
          { names: ["chdir"], action: "SCMP_ACT_ERRNO", includes: { caps: ["CAP_SYS_ADMIN"] } },
        ],
      }),
    );
    expect(await sh(["--security-opt", `seccomp=${profile}`], "mkdir /tmp/x 2>&1; cd /tmp && echo cd-ok")).toMatch(/Operation not permitted[\s\S]*cd-ok/);
    expect((await create({ SecurityOpt: ["apparmor=myprofile"] })).message).toContain("AppArmor profiles are not supported by ArcBox");
    expect((await create({ SecurityOpt: ["bogus"] })).message).toBe('invalid --security-opt 1: "bogus"');
  });

  test("--ulimit lowers limits for the process; raising a hard limit is refused with the reason", async () => {
    expect(await sh(["--ulimit", "nofile=256:512", "--ulimit", "nproc=100"], "ulimit -n; ulimit -Hn; ulimit -u")).toBe("256\n512\n100");
    // Execs get the container's limits, as dockerd's do.
    const id = await must(["run", "-d", "--network", "none", "--ulimit", "nofile=300:600", IMG, "sleep", "100000"]);
    for (let i = 0; i < 5; i++) expect(await must(["exec", id, "sh", "-c", "ulimit -n; ulimit -Hn"])).toBe("300\n600");
    const r = await d.docker(["run", "--rm", "--network", "none", "--ulimit", "nofile=99999999:99999999", IMG, "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("ulimit nofile: a hard limit of 99999999 is above the runtime's");
    expect((await create({ Ulimits: [{ Name: "bogus", Soft: 1, Hard: 1 }] })).message).toBe("invalid ulimit type: bogus");
  });
});

describe("kernel and runtime options", () => {
  test("--sysctl for the container's own namespaces; others refused with Docker's message", async () => {
    expect(await sh(["--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=123456789"], "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax")).toBe("1\n123456789");
    expect(await create({ Sysctls: { "vm.swappiness": "1" } })).toEqual({ status: 400, message: "sysctl 'vm.swappiness' is not allowed" });
    expect(await create({ NetworkMode: "host", Sysctls: { "net.ipv4.ip_forward": "1" } })).toEqual({ status: 400, message: 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace' });
  });

  test("--device maps a host node with its permissions; --device-cgroup-rule reaches the devices cgroup", async () => {
    expect(await sh(["--device", "/dev/null:/dev/mynull"], "test -c /dev/mynull && echo x > /dev/mynull && echo ok")).toBe("ok");
    // 10:237 is outside Docker's default allow list: "r" allows opening it for reading only.
    expect(await sh(["--device", "/dev/loop-control:/dev/lc:r"], "exec 3</dev/lc && echo read-ok; (exec 4>/dev/lc) 2>/dev/null || echo write-denied")).toBe("read-ok\nwrite-denied");
    expect(await sh(["--device", "/dev/loop-control:/dev/lc"], "(exec 4>/dev/lc) && echo write-ok")).toBe("write-ok");
    expect(await sh(["--device-cgroup-rule", "c 42:* rmw"], "grep -c '^c 42:\\* rwm' /sys/fs/cgroup/devices/devices.list")).toBe("1");
    expect(await sh([], "grep -c '^c 42:' /sys/fs/cgroup/devices/devices.list || true")).toBe("0");
    expect((await create({ DeviceCgroupRules: ["x 1:2 rwm"] })).message).toBe("invalid device cgroup format 'x 1:2 rwm'");
    const r = await d.docker(["run", "--rm", "--network", "none", "--device", "/etc/passwd:/dev/p", IMG, "true"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('error gathering device information while adding custom device "/etc/passwd": not a device node');
  });

  test("--memory-swappiness reaches the cgroup; out of range is a 400", async () => {
    expect(await sh(["--memory-swappiness", "17"], "cat /sys/fs/cgroup/memory/memory.swappiness")).toBe("17");
    expect((await create({ MemorySwappiness: 101 })).message).toBe("Invalid value: 101, valid memory swappiness range is 0-100");
  });

  test("--runtime runc, --isolation default, --volume-driver local are accepted; others refused", async () => {
    expect(await sh(["--runtime", "runc", "--isolation", "default", "--volume-driver", "local"], "echo ok")).toBe("ok");
    expect((await create({ Runtime: "kata" })).message).toBe("unknown or invalid runtime name: kata");
    expect((await create({ Isolation: "hyperv" })).status).toBe(400);
  });

  test("log drivers none (docker logs refuses, as Docker) and local (logs read back)", async () => {
    await must(["run", "--name", "nolog", "--network", "none", "--log-driver", "none", IMG, "echo", "hidden"]);
    const logs = await d.docker(["logs", "nolog"]);
    expect(logs.code).not.toBe(0);
    expect(logs.stderr).toContain("configured logging driver does not support reading");
    expect((await d.api("/containers/nolog/logs?stdout=1")).status).toBe(501);
    await must(["run", "--name", "locallog", "--network", "none", "--log-driver", "local", IMG, "echo", "kept"]);
    expect(await must(["logs", "locallog"])).toBe("kept");
    expect(await must(["inspect", "--format", "{{.HostConfig.LogConfig.Type}}", "locallog"])).toBe("local");
    expect((await create({ LogConfig: { Type: "syslog" } })).status).toBe(400);
    expect(await must(["info", "--format", "{{json .Plugins.Log}}"])).toBe('["json-file","local"]');
  });

  test("--mac-address on the default and a user-defined network; python3-docker's Config.MacAddress", async () => {
    const id = await must(["run", "-d", "--mac-address", "02:42:ac:11:00:99", IMG, "sleep", "100000"]);
    expect(await must(["exec", id, "cat", "/sys/class/net/eth0/address"])).toBe("02:42:ac:11:00:99");
    expect(await must(["inspect", "--format", "{{.NetworkSettings.MacAddress}}", id])).toBe("02:42:ac:11:00:99");
    await must(["network", "create", "macnet"]);
    expect(await must(["run", "--rm", "--network", "macnet", "--mac-address", "02-42-AC-11-00-98", IMG, "cat", "/sys/class/net/eth0/address"])).toBe("02:42:ac:11:00:98");
    const py = await run([
      "python3",
      "-c",
      `
import docker
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)}, version="1.41")
print(c.containers.run(${JSON.stringify(IMG)}, ["cat", "/sys/class/net/eth0/address"], remove=True, mac_address="02:42:ac:11:00:97").decode().strip())
`,
    ]);
    expect(py.stderr).toBe("");
    expect(py.stdout).toBe("02:42:ac:11:00:97\n");
    const bad = await d.api("/containers/create", { method: "POST", headers: json, body: JSON.stringify({ Image: IMG, MacAddress: "nope" }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toBe("nope is not a valid mac address");
    await must(["rm", "-f", id]);
  });

  test("python3-docker sends them the same way", async () => {
    const py = `
import docker
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
out = c.containers.run(${JSON.stringify(IMG)}, ["sh", "-c", "ulimit -n; id -G; cat /proc/sys/net/ipv4/ip_forward; grep NoNewPrivs /proc/self/status | tr -d '\\\\t'"],
    remove=True, network_mode="none", pid_mode="host", group_add=["777"], sysctls={"net.ipv4.ip_forward": "1"},
    ulimits=[docker.types.Ulimit(name="nofile", soft=300, hard=400)], security_opt=["no-new-privileges"], mem_swappiness=5)
print(out.decode().strip())
`;
    const r = await run(["python3", "-c", py]);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("300\n0 777\n1\nNoNewPrivs:1\n");
  });
});
