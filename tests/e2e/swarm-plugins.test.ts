/**
 * The swarm families and /plugins answer as a single-node Docker Engine outside a swarm
 * does (issue 9): 503 "not a swarm manager" (or "not part of a swarm" for leave), after
 * the same input checks; an empty plugin list and "not found" for named plugins.
 * Checked through the raw API, the docker CLI and Debian's python3-docker.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { run, TestDaemon } from "../helpers/daemon.ts";

const NOT_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
const NOT_IN_SWARM = "This node is not part of a swarm";

const d = new TestDaemon("arcbox-swarm-");
beforeAll(() => d.start(), 60_000);
afterAll(() => d.dispose(), 60_000);

async function call(method: string, path: string, body?: string): Promise<[number, string]> {
  const r = await d.api(`/v1.50${path}`, { method, body, headers: body === undefined ? {} : { "Content-Type": "application/json" } });
  expect(r.headers.get("content-type")).toBe("application/json");
  const text = await r.text();
  const json = JSON.parse(text) as { message?: string };
  return [r.status, json.message ?? text];
}

describe("swarm families on a node outside a swarm (statuses and messages as dockerd 20.10)", () => {
  const cases: [method: string, path: string, body: string | undefined, status: number, message: string][] = [
    ["GET", "/swarm", undefined, 503, NOT_MANAGER],
    ["POST", "/swarm/leave", undefined, 503, NOT_IN_SWARM],
    ["POST", "/swarm/leave?force=1", undefined, 503, NOT_IN_SWARM],
    ["POST", "/swarm/init", "{}", 400, 'invalid ListenAddr "": invalid empty address'],
    ["POST", "/swarm/join", '{"RemoteAddrs":["10.0.0.1"],"JoinToken":"x"}', 400, 'invalid ListenAddr "": invalid empty address'],
    ["POST", "/swarm/update", "{}", 400, `invalid swarm version '': strconv.ParseUint: parsing "": invalid syntax`],
    ["POST", "/swarm/update?version=1", "{}", 503, NOT_MANAGER],
    ["GET", "/swarm/unlockkey", undefined, 503, NOT_MANAGER],
    ["POST", "/swarm/unlock", '{"UnlockKey":"x"}', 503, NOT_MANAGER],
    ["GET", "/services", undefined, 503, NOT_MANAGER],
    ["GET", `/services?filters=${encodeURIComponent('{"name":["x"]}')}`, undefined, 503, NOT_MANAGER],
    ["POST", "/services/create", "{}", 503, NOT_MANAGER],
    ["GET", "/services/web", undefined, 503, NOT_MANAGER],
    ["DELETE", "/services/web", undefined, 503, NOT_MANAGER],
    ["POST", "/services/web/update", "{}", 400, `invalid service version '': strconv.ParseUint: parsing "": invalid syntax`],
    ["POST", "/services/web/update?version=3", "{}", 503, NOT_MANAGER],
    ["GET", "/services/web/logs", undefined, 400, "Bad parameters: you must choose at least one stream"],
    ["GET", "/services/web/logs?stdout=1", undefined, 503, NOT_MANAGER],
    ["GET", "/tasks", undefined, 503, NOT_MANAGER],
    ["GET", "/tasks/t1", undefined, 503, NOT_MANAGER],
    ["GET", "/tasks/t1/logs?stderr=1", undefined, 503, NOT_MANAGER],
    ["GET", "/nodes", undefined, 503, NOT_MANAGER],
    ["GET", "/nodes/n1", undefined, 503, NOT_MANAGER],
    ["DELETE", "/nodes/n1", undefined, 503, NOT_MANAGER],
    ["POST", "/nodes/n1/update", "{}", 400, `invalid node version '': strconv.ParseUint: parsing "": invalid syntax`],
    ["POST", "/nodes/n1/update?version=1", "{}", 503, NOT_MANAGER],
    ["GET", "/secrets", undefined, 503, NOT_MANAGER],
    ["POST", "/secrets/create", '{"Name":"s","Data":"eA=="}', 503, NOT_MANAGER],
    ["GET", "/secrets/s", undefined, 503, NOT_MANAGER],
    ["DELETE", "/secrets/s", undefined, 503, NOT_MANAGER],
    ["POST", "/secrets/s/update", "{}", 400, "invalid secret version"],
    ["POST", "/secrets/s/update?version=1", "{}", 503, NOT_MANAGER],
    ["GET", "/configs", undefined, 503, NOT_MANAGER],
    ["POST", "/configs/create", "{}", 503, NOT_MANAGER],
    ["GET", "/configs/c", undefined, 503, NOT_MANAGER],
    ["DELETE", "/configs/c", undefined, 503, NOT_MANAGER],
    ["POST", "/configs/c/update?version=x", "{}", 400, "invalid config version"],
    ["POST", "/configs/c/update?version=1", "{}", 503, NOT_MANAGER],
  ];
  for (const [method, path, body, status, message] of cases) {
    test(`${method} ${path}${body ? ` ${body}` : ""} -> ${status}`, async () => {
      expect(await call(method, path, body)).toEqual([status, message]);
    });
  }

  test("swarm init with an address is refused as unsupported, not attempted", async () => {
    const [status, message] = await call("POST", "/swarm/init", '{"ListenAddr":"0.0.0.0:2377"}');
    expect(status).toBe(501);
    expect(message).toContain("ArcBox does not support swarm mode");
  });

  test("bad JSON in a body or a filter is a 400 before the swarm check", async () => {
    expect((await call("POST", "/services/create", "garbage"))[0]).toBe(400);
    expect((await call("GET", "/tasks?filters=garbage"))[0]).toBe(400);
  });
});

describe("plugins on an engine without managed plugins", () => {
  test("the list is empty and its filters are checked", async () => {
    const r = await d.api("/v1.50/plugins");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual([]);
    expect((await d.api(`/v1.50/plugins?filters=${encodeURIComponent('{"capability":["volumedriver"],"enabled":["true"]}')}`)).status).toBe(200);
    expect(await call("GET", `/plugins?filters=${encodeURIComponent('{"bogus":["x"]}')}`)).toEqual([400, "invalid filter 'bogus'"]);
    expect(await call("GET", `/plugins?filters=${encodeURIComponent('{"enabled":["maybe"]}')}`)).toEqual([400, "invalid filter 'enabled=maybe'"]);
  });

  test("a named plugin is not found, whatever is asked of it", async () => {
    expect(await call("GET", "/plugins/vieux/sshfs:latest/json")).toEqual([404, 'plugin "vieux/sshfs:latest" not found']);
    expect(await call("DELETE", "/plugins/x?force=1")).toEqual([404, 'plugin "x" not found']);
    expect(await call("POST", "/plugins/x/enable?timeout=0")).toEqual([404, 'plugin "x" not found']);
    expect(await call("POST", "/plugins/x/disable")).toEqual([404, 'plugin "x" not found']);
    expect(await call("POST", "/plugins/x/push")).toEqual([404, 'plugin "x" not found']);
    expect(await call("POST", "/plugins/x/set", '["DEBUG=1"]')).toEqual([404, 'plugin "x" not found']);
    expect(await call("POST", "/plugins/x/upgrade?remote=x", "[]")).toEqual([404, 'plugin "x:latest" not found']);
  });

  test("installing one is refused with a reason; a missing reference is a 400", async () => {
    for (const [method, path, body] of [
      ["GET", "/plugins/privileges?remote=vieux/sshfs", undefined],
      ["POST", "/plugins/pull?remote=vieux/sshfs", "[]"],
      ["POST", "/plugins/create?name=p", "not a tar"],
    ] as const) {
      const [status, message] = await call(method, path, body);
      expect(status).toBe(501);
      expect(message).toContain("ArcBox does not support managed plugins");
    }
    expect(await call("GET", "/plugins/privileges")).toEqual([400, "invalid reference format"]);
    expect(await call("POST", "/plugins/pull", "[]")).toEqual([400, "invalid reference format"]);
  });
});

test("docker CLI: swarm leave, service ls and plugin ls", async () => {
  const leave = await d.docker(["swarm", "leave"]);
  expect(leave.code).toBe(1);
  expect(leave.stderr).toContain(`Error response from daemon: ${NOT_IN_SWARM}`);
  const services = await d.docker(["service", "ls"]);
  expect(services.code).toBe(1);
  expect(services.stderr).toContain(NOT_MANAGER);
  const plugins = await d.docker(["plugin", "ls", "--format", "{{.Name}}"]);
  expect(plugins).toEqual({ code: 0, stdout: "", stderr: "" });
});

test("python3-docker: teardown's swarm.leave() raises the 503 it expects; plugins.list() is empty", async () => {
  const script = `
import json, docker
c = docker.from_env()
out = {}
def err(f):
    try:
        f()
        return None
    except docker.errors.APIError as e:
        return [e.status_code, e.explanation]
out["leave"] = err(lambda: c.swarm.leave())
# docker-py's forced leave passes only on a 503 (or 406): what teardown code relies on.
out["leave_force"] = c.swarm.leave(force=True)
out["services"] = err(lambda: c.services.list())
out["secrets"] = err(lambda: c.secrets.list())
out["nodes"] = err(lambda: c.nodes.list())
out["init"] = err(lambda: c.swarm.init())
out["plugins"] = [p.name for p in c.plugins.list()]
out["plugin_get"] = None
try:
    c.plugins.get("nope")
except docker.errors.NotFound as e:
    out["plugin_get"] = e.explanation
out["info_swarm"] = c.info()["Swarm"]["LocalNodeState"]
print(json.dumps(out))
`;
  const r = await run(["python3", "-c", script], { env: { DOCKER_HOST: d.dockerHost } });
  expect(r.stderr).toBe("");
  expect(JSON.parse(r.stdout)).toEqual({
    leave: [503, NOT_IN_SWARM],
    leave_force: true,
    services: [503, NOT_MANAGER],
    secrets: [503, NOT_MANAGER],
    nodes: [503, NOT_MANAGER],
    init: [501, "cannot init a swarm: ArcBox does not support swarm mode (it runs containers on this node only)"],
    plugins: [],
    plugin_get: 'plugin "nope" not found',
    info_swarm: "inactive",
  });
});
