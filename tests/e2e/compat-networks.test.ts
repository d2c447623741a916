/**
 * Networks answered as Docker Engine (dockerd 20.10, API v1.50 spec) answers them:
 * create bodies with nulls and any name, swarm-only fields outside a swarm, bridge
 * options parsed as dockerd parses them, overlapping pools, IPv6 networks, connect and
 * disconnect of running containers, and legacy links. The expected statuses and
 * messages were measured against Debian's dockerd 20.10; docs/compat.md lists where
 * ArcBox answers differently on purpose.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { run, type TestDaemon } from "../helpers/daemon.ts";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";

let fx: BusyboxDaemon;
let d: TestDaemon;
let IMG: string;

beforeAll(async () => {
  fx = await startBusyboxDaemon("arcbox-compat-net-");
  d = fx.d;
  IMG = fx.image;
}, 120_000);

afterAll(async () => {
  await fx?.dispose();
}, 60_000);

async function must(args: string[], timeoutMs = 60_000): Promise<string> {
  const r = await d.docker(args, { timeoutMs });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

async function create(body: unknown): Promise<{ status: number; body: { Id?: string; Warning?: string; message?: string } }> {
  const res = await d.api("/networks/create", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as { Id?: string; message?: string } };
}

async function inspectNet(ref: string): Promise<any> {
  const res = await d.api(`/networks/${encodeURIComponent(ref)}`);
  expect(res.status).toBe(200);
  return res.json();
}

describe("network create", () => {
  test("names dockerd accepts, and null fields in the body", async () => {
    for (const name of ["test 01", "-dash", ".dot", "x:y", "héllo"]) {
      const r = await create({ Name: name });
      expect(r.status).toBe(201);
      expect((await inspectNet(name)).Name).toBe(name);
    }
    expect(await must(["network", "ls", "--filter", "name=test 01", "--format", "{{.Name}}"])).toBe("test 01");
    await must(["network", "rm", "--", "test 01", "-dash", ".dot", "x:y", "héllo"]);
    expect((await create({ Name: "" })).status).toBe(400);

    // compose and docker-py send nulls for what they leave out.
    const nulls = await create({ Name: "nulls", Driver: null, CheckDuplicate: null, EnableIPv6: null, IPAM: { Driver: null, Config: null, Options: null }, Options: null, Labels: null });
    expect(nulls.status).toBe(201);
    const pool = await create({ Name: "pool-nulls", IPAM: { Driver: "default", Config: [{ Subnet: "10.71.0.0/24", IPRange: null, Gateway: null, AuxiliaryAddresses: null }], Options: null } });
    expect(pool.status).toBe(201);
    expect((await inspectNet("pool-nulls")).IPAM.Config).toEqual([{ Subnet: "10.71.0.0/24", Gateway: "10.71.0.1" }]);
    // A pool without a subnet: dockerd's CIDR error.
    const noSubnet = await create({ Name: "no-subnet", IPAM: { Config: [{ Subnet: null, IPRange: null, Gateway: null }] } });
    expect(noSubnet.status).toBe(400);
    expect(noSubnet.body.message).toBe("invalid subnet  : invalid CIDR address: ");
    const dup = await create({ Name: "nulls", CheckDuplicate: true });
    expect(dup).toEqual({ status: 409, body: { message: "network with name nulls already exists" } });
    await must(["network", "rm", "nulls", "pool-nulls"]);
  });

  test("Scope, Ingress and Attachable as a dockerd outside a swarm answers them", async () => {
    const att = await create({ Name: "att", Attachable: true, Scope: "local" });
    expect(att.status).toBe(201);
    const net = await inspectNet("att");
    expect([net.Attachable, net.Scope, net.Ingress]).toEqual([true, "local", false]);
    expect(await create({ Name: "ing", Ingress: true })).toEqual({ status: 403, body: { message: "Ingress network can only be global scope network" } });
    expect(await create({ Name: "sw", Scope: "swarm" })).toEqual({ status: 403, body: { message: "cannot create a swarm scoped network when swarm is not active" } });
    const global = await create({ Name: "gl", Scope: "global" });
    expect(global.status).toBe(503);
    expect(global.body.message).toContain("This node is not a swarm manager");
    expect(await must(["network", "ls", "--format", "{{.Name}}"])).not.toMatch(/^(ing|sw|gl)$/m);
    await must(["network", "rm", "att"]);
  });

  test("bridge options: parsed as dockerd parses them, unknown ones kept", async () => {
    const bad: [Record<string, string>, string][] = [
      [{ "com.docker.network.driver.mtu": "abc" }, 'failed to parse com.docker.network.driver.mtu value: abc (strconv.Atoi: parsing "abc": invalid syntax)'],
      [{ "com.docker.network.bridge.enable_icc": "maybe" }, 'failed to parse com.docker.network.bridge.enable_icc value: maybe (strconv.ParseBool: parsing "maybe": invalid syntax)'],
      [{ "com.docker.network.bridge.enable_ip_masquerade": "yes" }, 'failed to parse com.docker.network.bridge.enable_ip_masquerade value: yes (strconv.ParseBool: parsing "yes": invalid syntax)'],
      [{ "com.docker.network.bridge.host_binding_ipv4": "nope" }, "failed to parse com.docker.network.bridge.host_binding_ipv4 value: nope (nil ip)"],
    ];
    for (const [Options, message] of bad) expect(await create({ Name: "badopt", Options })).toEqual({ status: 400, body: { message } });
    const opts = { "com.docker.network.bridge.foo": "bar", custom: "x", "com.docker.network.bridge.enable_icc": "0" };
    expect((await create({ Name: "opts", Options: opts, Labels: { team: "a" } })).status).toBe(201);
    const net = await inspectNet("opts");
    expect(net.Options).toEqual(opts);
    expect(net.Labels).toEqual({ team: "a" });
    // enable_icc=0 (Go's ParseBool) isolates the network's containers from each other.
    await must(["run", "-d", "--name", "icc-a", "--network", "opts", IMG, "sleep", "1000"]);
    const ping = await d.docker(["run", "--rm", "--network", "opts", IMG, "ping", "-c", "1", "-W", "1", "icc-a"]);
    expect(ping.stdout).toContain("0 packets received");
    await must(["rm", "-f", "icc-a"]);
    expect((await create({ Name: "br1", Options: { "com.docker.network.bridge.name": "cnbr-test0" } })).status).toBe(201);
    const id1 = (await inspectNet("br1")).Id;
    const clash = await create({ Name: "br2", Options: { "com.docker.network.bridge.name": "cnbr-test0" } });
    expect(clash.status).toBe(403);
    expect(clash.body.message).toMatch(new RegExp(`^cannot create network [0-9a-f]{64} \\(cnbr-test0\\): conflicts with network ${id1} \\(cnbr-test0\\): networks have same bridge name$`));
    await must(["network", "rm", "opts", "br1"]);
  }, 60_000);

  test("overlapping pools: 403 with Docker's message", async () => {
    expect((await create({ Name: "pa", IPAM: { Config: [{ Subnet: "10.72.0.0/24" }] } })).status).toBe(201);
    for (const Subnet of ["10.72.0.0/16", "10.72.0.0/24", "10.72.0.128/25"]) {
      const r = await create({ Name: "pb", IPAM: { Config: [{ Subnet }] } });
      expect(r.status).toBe(403);
      expect(r.body.message).toContain("Pool overlaps with other one on this address space");
    }
    await must(["network", "rm", "pa"]);
  });
});

describe("network connect and disconnect", () => {
  test("on a running container: inspect, aliases and DNS follow at once, and a restart keeps them", async () => {
    await must(["network", "create", "cn-one"]);
    await must(["network", "create", "cn-two"]);
    await must(["run", "-d", "--name", "mover", "--network", "cn-one", IMG, "sleep", "100000"]);
    await must(["network", "connect", "--alias", "foo", "--alias", "bar", "cn-two", "mover"]);
    const nets = JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks}}", "mover"]));
    expect(Object.keys(nets).sort()).toEqual(["cn-one", "cn-two"]);
    expect(nets["cn-two"].Aliases).toEqual(["foo", "bar"]);
    expect(nets["cn-two"].IPAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const inNet = JSON.parse(await must(["network", "inspect", "-f", "{{json .Containers}}", "cn-two"]));
    expect(Object.values(inNet).map((c: any) => c.IPv4Address)).toEqual([`${nets["cn-two"].IPAddress}/${nets["cn-two"].IPPrefixLen}`]);
    // The new network's embedded DNS answers for the aliases.
    const look = await must(["run", "--rm", "--network", "cn-two", IMG, "nslookup", "foo", "127.0.0.11"]);
    expect(look).toContain(`Address: ${nets["cn-two"].IPAddress}`);

    await must(["network", "disconnect", "cn-one", "mover"]);
    expect(Object.keys(JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks}}", "mover"])))).toEqual(["cn-two"]);
    expect(await must(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "mover"])).toBe(nets["cn-two"].IPAddress);
    // Docker keeps the change in the container's config: a restart comes back on cn-two only.
    await must(["restart", "-t", "0", "mover"]);
    const after = JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks}}", "mover"]));
    expect(Object.keys(after)).toEqual(["cn-two"]);
    expect(after["cn-two"].Aliases).toEqual(["foo", "bar"]);
    expect(await must(["exec", "mover", "sh", "-c", "ls /sys/class/net | grep eth | wc -l"])).toBe("1");
    await must(["rm", "-f", "mover"]);
    await must(["network", "rm", "cn-one", "cn-two"]);
  }, 90_000);
});
