/**
 * Exec of a command that cannot start, as dockerd answers it: `POST /exec/{id}/start`
 * is a 200 whose stream carries the OCI runtime's error, exec inspect then reports
 * ExitCode 126 (moby's ContainerExecStart sets 126 for any start failure); a detached
 * start returns the error itself. Testcontainers' `Wait.forListeningPorts` depends on
 * this: it runs `/bin/bash -c ...` in images that have no bash.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { run, type TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-compat-exec-");
  d = fx.d;
  IMG = fx.image;
  const r = await d.docker(["run", "-d", "--name", "ex", "--network", "none", IMG, "sleep", "100000"]);
  if (r.code !== 0) throw new Error(r.stderr);
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

const json = { "Content-Type": "application/json" };

async function createExec(cmd: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const res = await d.api("/containers/ex/exec", { method: "POST", headers: json, body: JSON.stringify({ Cmd: cmd, AttachStdout: true, AttachStderr: true, ...extra }) });
  expect(res.status).toBe(201);
  return ((await res.json()) as { Id: string }).Id;
}

async function exitCodeOf(id: string): Promise<number | null> {
  return ((await (await d.api(`/exec/${id}/json`)).json()) as { ExitCode: number | null }).ExitCode;
}

describe("exec of a command that cannot start", () => {
  test("docker exec: the runtime's error and exit 126, for a missing and a non-executable command", async () => {
    const nf = await d.docker(["exec", "ex", "nope"]);
    expect(nf.code).toBe(126);
    expect(nf.stdout + nf.stderr).toContain('OCI runtime exec failed: exec failed: unable to start container process: exec: "nope": executable file not found in $PATH: unknown');
    const denied = await d.docker(["exec", "ex", "/etc/passwd"]);
    expect(denied.code).toBe(126);
    expect(denied.stdout + denied.stderr).toContain('exec: "/etc/passwd": permission denied');
    // docker run of a missing binary keeps its own codes.
    expect((await d.docker(["run", "--rm", "--network", "none", IMG, "nope"])).code).toBe(127);
  });

  test("plain (not upgraded) start: 200 with the error in the stdout stream, then ExitCode 126", async () => {
    const id = await createExec(["/bin/bash", "-c", "</dev/tcp/localhost/80"]);
    const res = await d.api(`/exec/${id}/start`, { method: "POST", headers: json, body: "{}" });
    expect(res.status).toBe(200);
    const body = new Uint8Array(await res.arrayBuffer());
    expect(body[0]).toBe(1); // a stdout frame
    const text = new TextDecoder().decode(body.subarray(8));
    expect(text).toStartWith('OCI runtime exec failed: exec failed: unable to start container process: exec: "/bin/bash"');
    expect(text).toEndWith(": unknown\r\n");
    expect(await exitCodeOf(id)).toBe(126);
    const again = await d.api(`/exec/${id}/start`, { method: "POST", headers: json, body: "{}" });
    expect(again.status).toBe(409);
  });

  test("detached start returns the error (400) and ExitCode is 126", async () => {
    const id = await createExec(["nope"]);
    const res = await d.api(`/exec/${id}/start`, { method: "POST", headers: json, body: JSON.stringify({ Detach: true }) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toContain('exec: "nope": executable file not found in $PATH');
    expect(await exitCodeOf(id)).toBe(126);
  });

  test("python3-docker exec_run: exit code 126 and the error as output", async () => {
    const py = `
import docker
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
r = c.containers.get("ex").exec_run(["/bin/bash", "-c", "true"])
print(r.exit_code)
print(r.output.decode())
ok = c.containers.get("ex").exec_run(["sh", "-c", "echo fine"])
print(ok.exit_code, ok.output.decode().strip())
`;
    const r = await run(["python3", "-c", py]);
    expect(r.stderr).toBe("");
    const lines = r.stdout.split("\n");
    expect(lines[0]).toBe("126");
    expect(lines[1]).toContain('exec: "/bin/bash"');
    expect(r.stdout).toContain("0 fine");
  });
});
