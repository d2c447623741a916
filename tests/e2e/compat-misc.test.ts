/**
 * Smaller answers clients parse: container prune's SpaceReclaimed, the pre-1.44
 * "You cannot remove a running container" wording, `docker diff` without the files the
 * runtime binds into /etc, and exec output with a TTY (\n as \r\n, as a terminal).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { run, type TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-compat-misc-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

async function must(args: string[]): Promise<string> {
  const r = await d.docker(args);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

describe("compat details", () => {
  test("container prune reports the writable layers' size as SpaceReclaimed", async () => {
    await must(["run", "--name", "big", "--network", "none", IMG, "sh", "-c", "head -c 300000 /dev/zero > /blob"]);
    await must(["run", "--name", "small", "--network", "none", IMG, "true"]);
    const res = await d.api("/containers/prune", { method: "POST" });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { ContainersDeleted: string[]; SpaceReclaimed: number };
    expect(body.ContainersDeleted).toHaveLength(2);
    expect(body.SpaceReclaimed).toBeGreaterThanOrEqual(300000);
    expect(body.SpaceReclaimed).toBeLessThan(400000);
    const again = (await (await d.api("/containers/prune", { method: "POST" })).json()) as { SpaceReclaimed: number };
    expect(again.SpaceReclaimed).toBe(0);
  });

  test("removing a running container: today's wording, and Docker 20.10's below API 1.44", async () => {
    const id = await must(["run", "-d", "--name", "busy", "--network", "none", IMG, "sleep", "100000"]);
    const now = await d.api("/containers/busy", { method: "DELETE" });
    expect(now.status).toBe(409);
    expect(((await now.json()) as { message: string }).message).toBe('cannot remove container "/busy": container is running: stop the container before removing or force remove');
    const old = await d.api("/v1.41/containers/busy", { method: "DELETE" });
    expect(old.status).toBe(409);
    expect(((await old.json()) as { message: string }).message).toBe(`You cannot remove a running container ${id}. Stop the container before attempting removal or force remove`);
    await must(["pause", "busy"]);
    const paused = await d.api("/v1.41/containers/busy", { method: "DELETE" });
    expect(((await paused.json()) as { message: string }).message).toBe(`You cannot remove a paused container ${id}. Unpause and then stop the container before attempting removal or force remove`);
    const py = await run([
      "/usr/bin/python3",
      "-c",
      `
import docker
c = docker.APIClient(base_url=${JSON.stringify(d.dockerHost)}, version="1.41")
try:
    c.remove_container("busy")
except docker.errors.APIError as e:
    print(e.status_code, e.explanation)
`,
    ]);
    expect(py.stdout).toContain(`409 You cannot remove a paused container ${id}`);
    await must(["rm", "-f", "busy"]);
  });

  test("docker diff leaves out /etc/hostname, /etc/hosts, /etc/resolv.conf (and an otherwise unchanged /etc)", async () => {
    await must(["run", "--name", "clean", IMG, "true"]);
    expect(await must(["diff", "clean"])).toBe("");
    await must(["run", "--name", "dirty", IMG, "sh", "-c", "echo x > /etc/newfile; echo y > /tmp/t"]);
    expect((await must(["diff", "dirty"])).split("\n")).toEqual(["C /etc", "A /etc/newfile", "C /tmp", "A /tmp/t"]);
  });

  test("exec with a TTY: \\n arrives as \\r\\n, through the CLI and python3-docker", async () => {
    await must(["run", "-d", "--name", "tty", "--network", "none", IMG, "sleep", "100000"]);
    const cli = await d.docker(["exec", "-t", "tty", "printf", "a\\nb\\n"]);
    expect(cli.stdout).toBe("a\r\nb\r\n");
    const py = await run([
      "/usr/bin/python3",
      "-c",
      `
import docker
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
for _ in range(5):
    print(repr(c.containers.get("tty").exec_run(["printf", "a\\\\nb\\\\n"], tty=True).output))
`,
    ]);
    expect(py.stderr).toBe("");
    expect(py.stdout).toBe("b'a\\r\\nb\\r\\n'\n".repeat(5));
  });
});

test("a followed log stream the client cancelled leaves apid up when the container stops", async () => {
  await must(["run", "-d", "--name", "follow", "--network", "none", IMG, "sh", "-c", "echo hi; exec sleep 100000"]);
  const ac = new AbortController();
  const res = await d.api("/containers/follow/logs?follow=1&stdout=1&stderr=1", { signal: ac.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  expect((await reader.read()).done).toBe(false);
  ac.abort();
  await reader.cancel().catch(() => {});
  await Bun.sleep(200);
  await must(["stop", "-t", "0", "follow"]);
  await Bun.sleep(500);
  expect((await d.api("/_ping")).status).toBe(200);
  const supervisorLog = await Bun.file(`${d.home}/log/supervisor.log`).text();
  expect(supervisorLog).not.toContain("service apid exited unexpectedly");
  await must(["rm", "follow"]);
});

test("attach: the client closing its stdin ends the session, the container keeps running (python3-docker)", async () => {
  await must(["run", "-d", "-i", "--name", "attach-eof", "--network", "none", IMG, "cat"]);
  const py = await run(
    [
      "/usr/bin/python3",
      "-c",
      `
import docker, socket, threading, time
from docker.utils.socket import frames_iter
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)}, version="1.41")
s = c.containers.get("attach-eof").attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
s._sock.sendall(b"echoed\\n")
time.sleep(0.3)
s._sock.shutdown(socket.SHUT_WR)
t = time.time()
threading.Timer(10, lambda: s._sock.shutdown(socket.SHUT_RDWR)).start()
print(repr(b"".join(d for _, d in frames_iter(s, False))), time.time() - t < 5)
print(c.containers.get("attach-eof").status)
import os; os._exit(0)
`,
    ],
    { timeoutMs: 30_000 },
  );
  expect(py.stderr).toBe("");
  expect(py.stdout).toBe("b'echoed\\n' True\nrunning\n");
  await must(["rm", "-f", "attach-eof"]);
});

test("inspect: --tmpfs stays in HostConfig.Tmpfs and is not listed in Mounts (a --mount tmpfs is)", async () => {
  await must(["create", "--name", "tmpfs-view", "--network", "none", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,target=/m", IMG, "true"]);
  const [info] = JSON.parse(await must(["inspect", "tmpfs-view"])) as { Mounts: { Type: string; Destination: string }[]; HostConfig: { Tmpfs: Record<string, string> } }[];
  expect(info!.HostConfig.Tmpfs).toEqual({ "/scratch": "size=1m" });
  expect(info!.Mounts.map((m) => [m.Type, m.Destination])).toEqual([["tmpfs", "/m"]]);
  await must(["rm", "tmpfs-view"]);
});
