/**
 * Docker networking with the real docker CLI: network create/ls/inspect/rm/prune,
 * containers reaching each other by name on a user network, published ports on
 * 127.0.0.1 (docker port), clear errors, survival of a daemon restart, and no
 * namespace, interface or iptables rule left once containers and networks are gone.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { IN_VM, test } from "../helpers/engine-mode.ts";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { netNames } from "../../services/netd/core/names.ts";
import { waitFor } from "../helpers/wait.ts";

let d: TestDaemon;
let reg: TestRegistry;
let image: string;

beforeAll(async () => {
  reg = await startRegistry();
  image = (await pushBusybox(reg)).reference;
  d = new TestDaemon("arcbox-e2e-net-");
  await d.start();
  const pull = await d.docker(["pull", "-q", image]);
  expect(pull.code).toBe(0);
}, 120_000);

afterAll(async () => {
  await d.docker(["rm", "-f", "srv", "web", "clash", "multi", "persist"]).catch(() => undefined);
  const names = netNames(d.home);
  await d.dispose();
  await reg?.stop();
  // The kernel destroys deleted namespaces (and their veths) asynchronously: allow it a moment.
  const check = () => run(["sh", "-c", `ip -br link | grep ${names.ifPrefix}; ip netns | grep ${names.netnsPrefix}; iptables-save | grep ${names.tag}; true`]);
  let leftovers = await check();
  for (let i = 0; i < 100 && leftovers.stdout !== ""; i++) {
    await Bun.sleep(50);
    leftovers = await check();
  }
  expect(leftovers.stdout).toBe("");
}, 120_000);

async function ok(args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await d.docker(args, { timeoutMs });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

test("network create, ls, inspect, rm and prune through the CLI", async () => {
  const id = (await ok(["network", "create", "--label", "team=a", "--subnet", "10.98.0.0/24", "--gateway", "10.98.0.254", "--ip-range", "10.98.0.128/25", "ranged"])).trim();
  expect(id).toMatch(/^[0-9a-f]{64}$/);
  await ok(["network", "create", "--internal", "sealed"]);
  const ls = await ok(["network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"]);
  expect(ls.split("\n").filter(Boolean).sort()).toEqual(["bridge bridge local", "host host local", "none null local", "ranged bridge local", "sealed bridge local"]);
  const [net] = JSON.parse(await ok(["network", "inspect", "ranged"]));
  expect(net.Id).toBe(id);
  expect(net.IPAM.Config).toEqual([{ Subnet: "10.98.0.0/24", IPRange: "10.98.0.128/25", Gateway: "10.98.0.254" }]);
  expect(net.Labels).toEqual({ team: "a" });
  expect(JSON.parse(await ok(["network", "inspect", "sealed"]))[0].Internal).toBe(true);
  expect((await ok(["network", "ls", "-q", "--filter", "label=team=a"])).trim()).toBe(id.slice(0, 12));
  expect(await ok(["network", "ls", "--filter", "type=custom", "--format", "{{.Name}}"])).toBe("ranged\nsealed\n");

  // An address from the range, and a static one.
  const ip = (await ok(["run", "--rm", "--network", "ranged", image, "sh", "-c", "ip -4 -o addr show eth0 | awk '{print $4}'"])).trim();
  expect(ip).toBe("10.98.0.128/24");
  const fixed = await ok(["run", "--rm", "--network", "ranged", "--ip", "10.98.0.7", image, "sh", "-c", "ip -4 -o addr show eth0"]);
  expect(fixed).toContain("10.98.0.7/24");

  expect(await ok(["network", "prune", "-f", "--filter", "label=team=a"])).toContain("ranged");
  await ok(["network", "rm", "sealed"]);
  expect((await d.docker(["network", "inspect", "ranged"])).code).not.toBe(0);
}, 90_000);

test("bad network input: Docker's errors, nothing half-built", async () => {
  await ok(["network", "create", "--subnet", "10.99.0.0/24", "taken"]);
  const overlap = await d.docker(["network", "create", "--subnet", "10.99.0.0/16", "overlap"]);
  expect(overlap.code).not.toBe(0);
  expect(overlap.stderr).toContain("Pool overlaps with other one on this address space");
  const gw = await d.docker(["network", "create", "--subnet", "10.97.0.0/24", "--gateway", "10.96.0.1", "badgw"]);
  expect(gw.stderr).toContain("no matching subnet for gateway");
  const dup = await d.docker(["network", "create", "taken"]);
  expect(dup.stderr).toContain("network with name taken already exists");
  const rmBridge = await d.docker(["network", "rm", "bridge"]);
  expect(rmBridge.stderr).toContain("bridge is a pre-defined network and cannot be removed");
  await ok(["create", "--name", "outside", "--network", "taken", "--ip", "10.50.0.2", image, "true"]);
  const outside = await d.docker(["start", "outside"]);
  await d.docker(["rm", "-f", "outside"]);
  expect(outside.code).not.toBe(0);
  expect(outside.stderr).toContain("no configured subnet or ip-range contain the IP address 10.50.0.2");
  const hostIf = await d.docker(["network", "create", "-o", "com.docker.network.bridge.name=lo", "steal"]);
  expect(hostIf.stderr).toContain("bridge name lo is already in use");
  const missing = await d.docker(["network", "inspect", "nope"]);
  expect(missing.stderr).toContain("network nope not found");
  const res = await d.api("/networks/create", { method: "POST", body: JSON.stringify({ Name: "x", IPAM: { Config: [{ Subnet: "not-a-cidr" }] } }) });
  expect(res.status).toBe(400);
  expect(((await res.json()) as { message: string }).message).toContain("invalid CIDR address");
  expect(await ok(["network", "ls", "--format", "{{.Name}}"])).not.toContain("overlap");
  await ok(["network", "rm", "taken"]);
}, 90_000);

test("containers on a user network reach each other by name; a network in use cannot go", async () => {
  await ok(["network", "create", "appnet"]);
  await ok(["run", "-d", "--name", "srv", "--network", "appnet", "--network-alias", "api", image, "sh", "-c", "echo 'hi from srv' > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]);
  const out = await ok([
    "run",
    "--rm",
    "--network",
    "appnet",
    image,
    "sh",
    "-c",
    "ping -c 1 -W 2 srv; ip=$(nslookup srv 127.0.0.11 | awk '/^Address: /{print $2}'); for i in $(seq 50); do printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc $ip 8080 | grep hi && break; sleep 0.1; done; nslookup api 127.0.0.11",
  ]);
  // (busybox-static's wget crashes in this build; nc speaks HTTP well enough.)
  expect(out).toContain("1 packets received");
  expect(out).toContain("hi from srv");
  const [srv] = JSON.parse(await ok(["network", "inspect", "appnet"])).map((n: any) => Object.values(n.Containers)) as any[];
  expect(srv).toHaveLength(1);
  expect(out).toContain(`Address: ${(srv[0] as any).IPv4Address.split("/")[0]}`);
  const rm = await d.docker(["network", "rm", "appnet"]);
  expect(rm.code).not.toBe(0);
  expect(rm.stderr).toContain("has active endpoints");
  await ok(["rm", "-f", "srv"]);
  await ok(["network", "rm", "appnet"]);
}, 90_000);

test("published ports answer on 127.0.0.1, show in docker port, and a taken port fails cleanly", async () => {
  await ok([
    "run",
    "-d",
    "--name",
    "web",
    "-p",
    "127.0.0.1::8080",
    "-p",
    "18453:8081/tcp",
    image,
    "sh",
    "-c",
    "echo published > /tmp/index.html; httpd -p 8081 -h /tmp; exec httpd -f -p 8080 -h /tmp",
  ]);
  const port = await ok(["port", "web", "8080"]);
  const m = /127\.0\.0\.1:(\d+)/.exec(port);
  expect(m).not.toBeNull();
  let body = "";
  await waitFor("the published port", async () => {
    body = await fetch(`http://127.0.0.1:${m![1]}/index.html`).then(
      (r) => (r.ok ? r.text() : ""),
      () => "",
    );
    return body !== "";
  });
  expect(body).toBe("published\n");
  expect(await fetch("http://127.0.0.1:18453/index.html").then((r) => r.text())).toBe("published\n");
  // ...and on the host's own external address too.
  const hostIp = /src (\S+)/.exec((await run(["ip", "-4", "-o", "route", "get", "1.1.1.1"])).stdout)?.[1];
  expect(await fetch(`http://${hostIp}:18453/index.html`).then((r) => r.text())).toBe("published\n");
  expect(await ok(["ps", "--format", "{{.Ports}}", "--filter", "name=web"])).toContain(`127.0.0.1:${m![1]}->8080/tcp`);
  const clash = await d.docker(["run", "-d", "--name", "clash", "-p", "18453:80", image, "sleep", "60"]);
  expect(clash.code).not.toBe(0);
  expect(clash.stderr).toContain("address already in use");
  await d.docker(["rm", "-f", "clash"]);
  await ok(["rm", "-f", "web"]);
  const names = netNames(d.home);
  await waitFor("namespaces of removed containers to go", async () => !(await run(["ip", "netns"])).stdout.includes(names.netnsPrefix));
  expect((await run(["iptables-save", "-t", "nat"])).stdout).not.toContain("18453");
}, 90_000);

test("a host port range publishes on a free port of the range; a bad range is a 400", async () => {
  await ok(["run", "-d", "--name", "ranged", "-p", "18600-18602:8080", image, "sh", "-c", "echo ranged > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]);
  const hostPort = Number(/:(\d+)$/m.exec(await ok(["port", "ranged", "8080"]))![1]);
  expect(hostPort).toBeGreaterThanOrEqual(18600);
  expect(hostPort).toBeLessThanOrEqual(18602);
  let body = "";
  await waitFor("the ranged port", async () => {
    body = await fetch(`http://127.0.0.1:${hostPort}/index.html`).then(
      (r) => (r.ok ? r.text() : ""),
      () => "",
    );
    return body !== "";
  });
  expect(body).toBe("ranged\n");
  await ok(["rm", "-f", "ranged"]);
  const res = await d.api("/containers/create", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ Image: image, Cmd: ["true"], HostConfig: { PortBindings: { "80/tcp": [{ HostPort: "9000-8000" }] } } }),
  });
  const created = (await res.json()) as { Id?: string; message?: string };
  // Docker refuses a reversed range when the container is created or started: either way, a clear 4xx.
  if (res.status === 201) {
    const start = await d.api(`/containers/${created.Id}/start`, { method: "POST" });
    expect(start.status).toBe(400);
    expect(((await start.json()) as { message: string }).message).toContain("invalid host port");
    await d.docker(["rm", "-f", created.Id!]);
  } else {
    expect(res.status).toBe(400);
  }
}, 90_000);

test("containers that keep running across a daemon restart still resolve each other by name", async () => {
  await ok(["network", "create", "dnsnet"]);
  await ok(["run", "-d", "--name", "peer-a", "--network", "dnsnet", image, "sleep", "600"]);
  await ok(["run", "-d", "--name", "peer-b", "--network", "dnsnet", image, "sleep", "600"]);
  const ipA = (await ok(["inspect", "-f", '{{(index .NetworkSettings.Networks "dnsnet").IPAddress}}', "peer-a"])).trim();
  await d.stop();
  await d.start();
  // Only container calls from here on: nothing but apid's recovery can bring netd's DNS back.
  let out = "";
  await waitFor("embedded DNS after the restart", async () => {
    const r = await d.docker(["exec", "peer-b", "nslookup", "peer-a", "127.0.0.11"]);
    out = r.stdout;
    return r.code === 0 && out.includes(ipA);
  });
  expect(out).toContain(ipA);
  await ok(["rm", "-f", "peer-a", "peer-b"]);
  await ok(["network", "rm", "dnsnet"]);
}, 120_000);

test("networks survive a daemon restart and are rebuilt", async () => {
  await ok(["network", "create", "--subnet", "10.96.5.0/24", "keeper"]);
  const before = JSON.parse(await ok(["network", "inspect", "keeper"]))[0];
  await d.stop();
  await d.start();
  const after = JSON.parse(await ok(["network", "inspect", "keeper"]))[0];
  expect(after.Id).toBe(before.Id);
  const out = await ok(["run", "--rm", "--network", "keeper", image, "sh", "-c", "ip -4 -o addr show eth0; ping -c 1 -W 2 10.96.5.1"]);
  expect(out).toContain("10.96.5.2/24");
  expect(out).toContain("1 packets received");
  await ok(["network", "rm", "keeper"]);
}, 90_000);

test("the gateway keeps its MAC as containers join, so neighbours keep reaching it and the DNS", async () => {
  await ok(["network", "create", "steady"]);
  await ok(["run", "-d", "--name", "web", "--network", "steady", image, "sleep", "120"]);
  const [net] = JSON.parse(await ok(["network", "inspect", "steady"]));
  const gw: string = net.IPAM.Config[0].Gateway;
  // The MAC that web's ARP cache holds for the gateway.
  const gatewayMac = async () => {
    await ok(["exec", "web", "ping", "-c", "1", "-W", "5", gw]);
    const neigh = await ok(["exec", "web", "ip", "neigh", "show", gw]);
    return /lladdr (\S+)/.exec(neigh)?.[1];
  };
  const before = await gatewayMac();
  expect(before).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  // A bridge without a fixed MAC takes its lowest port's: with four more random veth
  // MACs it would change four times in five.
  for (let i = 0; i < 4; i++) await ok(["run", "-d", "--name", `join${i}`, image, "sleep", "120"]);
  for (let i = 0; i < 4; i++) await ok(["network", "connect", "--alias", `late${i}`, "steady", `join${i}`]);
  expect(await gatewayMac()).toBe(before);
  // Name lookups right after a connect go through the gateway: they answer at once.
  for (let i = 0; i < 4; i++) expect(await ok(["exec", "web", "nslookup", `late${i}`, "127.0.0.11"], 8_000)).toContain("Name:");
  await ok(["rm", "-f", "web", "join0", "join1", "join2", "join3"]);
  await ok(["network", "rm", "steady"]);
}, 120_000);

test("docker network connect/disconnect on a running container adds and removes an interface", async () => {
  await ok(["network", "create", "one"]);
  await ok(["network", "create", "two"]);
  const id = (await ok(["run", "-d", "--name", "multi", "--network", "one", image, "sleep", "120"])).trim();
  const ns = `${netNames(d.home).netnsPrefix}${id.slice(0, 16)}`;
  await ok(["network", "connect", "--alias", "extra", "two", "multi"]);
  // The namespace is the host's, or in VM mode the engine machine's (same name there).
  const nsAddrs = () =>
    IN_VM ? d.arcbox(["machine", "exec", "arcbox-engine", "--", "ip", "netns", "exec", ns, "ip", "-o", "-4", "addr"]) : run(["ip", "netns", "exec", ns, "ip", "-o", "-4", "addr"]);
  const addrs = await nsAddrs();
  expect(addrs.stdout).toContain("eth1");
  const [two] = JSON.parse(await ok(["network", "inspect", "two"]));
  const ip = (Object.values(two.Containers)[0] as any).IPv4Address.split("/")[0];
  expect(addrs.stdout).toContain(ip);
  const look = await ok(["run", "--rm", "--network", "two", image, "nslookup", "extra", "127.0.0.11"]);
  expect(look).toContain(`Address: ${ip}`);
  await ok(["network", "disconnect", "two", "multi"]);
  expect((await nsAddrs()).stdout).not.toContain("eth1");
  const again = await d.docker(["network", "disconnect", "two", "multi"]);
  expect(again.stderr).toContain("is not connected to network two");
  await ok(["rm", "-f", "multi"]);
  await ok(["network", "rm", "one", "two"]);
}, 90_000);

test("a published port keeps answering across a daemon restart", async () => {
  await ok(["run", "-d", "--name", "persist", "-p", "127.0.0.1:18461:8080", image, "sh", "-c", "echo still-here > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]);
  const get = () =>
    fetch("http://127.0.0.1:18461/index.html").then(
      (r) => (r.ok ? r.text() : ""),
      () => "",
    );
  await waitFor("the published port", async () => (await get()) !== "");
  await d.stop();
  await d.start();
  // netd starts lazily: any Docker call that needs it brings the rules back if they were lost.
  expect(await ok(["port", "persist"])).toContain("127.0.0.1:18461");
  await waitFor("the published port after restart", async () => (await get()) === "still-here\n");
  await ok(["rm", "-f", "persist"]);
  expect((await run(["iptables-save", "-t", "nat"])).stdout).not.toContain("18461");
}, 90_000);

test("an internal network has no way out; a normal one reaches the host's outside address, with its MTU", async () => {
  const route = (await run(["ip", "-4", "-o", "route", "get", "1.1.1.1"])).stdout;
  const hostIp = /src (\S+)/.exec(route)?.[1];
  expect(hostIp).toBeDefined();
  await ok(["network", "create", "--internal", "vault"]);
  await ok(["network", "create", "--opt", "com.docker.network.driver.mtu=1400", "open"]);
  const inside = await d.docker(["run", "--rm", "--network", "vault", image, "sh", "-c", `ip route; ping -c 1 -W 1 ${hostIp}`], { timeoutMs: 30_000 });
  expect(inside.stdout).not.toContain("default via");
  expect(inside.code).not.toBe(0);
  const outside = await ok(["run", "--rm", "--network", "open", image, "sh", "-c", `ip route; ping -c 1 -W 2 ${hostIp}`]);
  expect(outside).toContain("default via");
  expect(outside).toContain("1 packets received");
  expect(await ok(["run", "--rm", "--network", "open", image, "cat", "/sys/class/net/eth0/mtu"])).toBe("1400\n");
  const bad = await d.docker(["network", "create", "--opt", "com.docker.network.driver.mtu=9", "tiny"]);
  expect(bad.stderr).toContain("invalid MTU 9");
  await ok(["network", "rm", "vault", "open"]);
}, 90_000);
