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
    // Containers use such networks by name; the embedded DNS serves them.
    expect(await must(["run", "--rm", "--network", "test 01", "--name", "spaced", IMG, "nslookup", "spaced", "127.0.0.11"])).toMatch(/Name:\tspaced\nAddress: \d+\.\d+\.\d+\.\d+/);
    // A "/" in a name: the CLI sends it unescaped (GET /networks/a/b), as dockerd's routes take it.
    await must(["network", "create", "a/b"]);
    expect(await must(["network", "inspect", "-f", "{{.Name}}", "a/b"])).toBe("a/b");
    await must(["run", "-d", "--name", "slashed", IMG, "sleep", "100000"]);
    await must(["network", "connect", "a/b", "slashed"]);
    expect(Object.keys(JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks}}", "slashed"]))).sort()).toEqual(["a/b", "bridge"]);
    await must(["network", "disconnect", "a/b", "slashed"]);
    await must(["rm", "-f", "slashed"]);
    await must(["network", "rm", "--", "test 01", "-dash", ".dot", "x:y", "héllo", "a/b"]);
    expect((await create({ Name: "" })).status).toBe(400);

    // compose and docker-py send nulls for what they leave out.
    const nulls = await create({ Name: "nulls", Driver: null, CheckDuplicate: null, EnableIPv6: null, IPAM: { Driver: null, Config: null, Options: null }, Options: null, Labels: null });
    expect(nulls.status).toBe(201);
    const pool = await create({ Name: "pool-nulls", IPAM: { Driver: "default", Config: [{ Subnet: "10.71.0.0/24", IPRange: null, Gateway: null, AuxiliaryAddresses: null }], Options: null } });
    expect(pool.status).toBe(201);
    // A user's subnet without a gateway shows no Gateway, as dockerd shows it.
    expect((await inspectNet("pool-nulls")).IPAM.Config).toEqual([{ Subnet: "10.71.0.0/24" }]);
    // A pool without a subnet: dockerd's CIDR error.
    const noSubnet = await create({ Name: "no-subnet", IPAM: { Config: [{ Subnet: null, IPRange: null, Gateway: null }] } });
    expect(noSubnet.status).toBe(400);
    expect(noSubnet.body.message).toBe("invalid subnet  : invalid CIDR address: ");
    const dup = await create({ Name: "nulls", CheckDuplicate: true });
    expect(dup).toEqual({ status: 409, body: { message: "network with name nulls already exists" } });
    await must(["network", "rm", "nulls", "pool-nulls"]);
  });

  test("docker-py: IPAMPool's nulls, an IPv6 pool and labels", async () => {
    const py = await run([
      "python3",
      "-c",
      `
import docker
from docker.types import IPAMConfig, IPAMPool
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.73.0.0/24"), IPAMPool(subnet="fd00:78::/64", gateway="fd00:78::1")])
n = c.networks.create("py net", driver="bridge", ipam=ipam, enable_ipv6=True, check_duplicate=True, labels={"k": "v"})
n.reload()
print(n.name, n.attrs["EnableIPv6"], [p["Subnet"] for p in n.attrs["IPAM"]["Config"]], n.attrs["Labels"])
n.remove()
`,
    ]);
    expect(py.stderr).toBe("");
    expect(py.stdout.trim()).toBe("py net True ['10.73.0.0/24', 'fd00:78::/64'] {'k': 'v'}");
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

describe("IPv6", () => {
  test("EnableIPv6 with a v6 subnet: addresses, --ip6, link-local IPs, inspect, AAAA and ping6", async () => {
    // The kernel must allow IPv6 in a fresh namespace, as containers get one.
    const probe = await run(["sh", "-c", "ip netns add cn-v6probe && ip netns exec cn-v6probe cat /proc/sys/net/ipv6/conf/default/disable_ipv6; ip netns del cn-v6probe"]);
    expect(probe.stdout.trim()).toBe("0");

    await must(["network", "create", "--ipv6", "--subnet", "fd00:71::/64", "v6net"]);
    const net = await inspectNet("v6net");
    expect(net.EnableIPv6).toBe(true);
    expect(net.IPAM.Config).toHaveLength(2);
    expect(net.IPAM.Config[0].Gateway).toMatch(/^10\./);
    expect(net.IPAM.Config[1]).toEqual({ Subnet: "fd00:71::/64" });
    await must(["run", "-d", "--name", "six-a", "--network", "v6net", IMG, "sleep", "100000"]);
    await must(["run", "-d", "--name", "six-b", "--network", "v6net", "--ip6", "fd00:71::99", "--link-local-ip", "169.254.9.9", "--link-local-ip", "fe80::99", IMG, "sleep", "100000"]);
    const ns = JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings}}", "six-b"]));
    const ep = ns.Networks.v6net;
    expect([ep.GlobalIPv6Address, ep.GlobalIPv6PrefixLen, ep.IPv6Gateway]).toEqual(["fd00:71::99", 64, "fd00:71::1"]);
    expect(ep.IPAMConfig).toEqual({ IPv6Address: "fd00:71::99", LinkLocalIPs: ["169.254.9.9", "fe80::99"] });
    expect([ns.GlobalIPv6Address, ns.IPv6Gateway]).toEqual(["fd00:71::99", "fd00:71::1"]);
    const a = JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks.v6net}}", "six-a"]));
    expect(a.GlobalIPv6Address).toBe("fd00:71::2");
    const addrs = await must(["exec", "six-b", "ip", "addr", "show", "eth0"]);
    for (const want of ["inet6 fd00:71::99/64", "inet 169.254.9.9/16", "inet6 fe80::99/64"]) expect(addrs).toContain(want);
    expect(await must(["exec", "six-b", "ip", "-6", "route"])).toContain("default via fd00:71::1");
    const ping = await must(["exec", "six-a", "ping", "-6", "-c", "1", "-W", "3", "six-b"]);
    expect(ping).toContain("PING six-b (fd00:71::99)");
    expect(ping).toContain("1 packets received");
    expect(await must(["exec", "six-a", "ping", "-6", "-c", "1", "-W", "3", "fd00:71::1"])).toContain("1 packets received");
    const look = await must(["exec", "six-a", "nslookup", "-type=AAAA", "six-b", "127.0.0.11"]);
    expect(look).toContain("fd00:71::99");
    expect(await must(["exec", "six-a", "cat", "/etc/hosts"])).toContain("fd00:71::2\t");
    const members = JSON.parse(await must(["network", "inspect", "-f", "{{json .Containers}}", "v6net"]));
    expect(
      Object.values(members)
        .map((m: any) => m.IPv6Address)
        .sort(),
    ).toEqual(["fd00:71::2/64", "fd00:71::99/64"]);

    // A live connect with --ip6.
    await must(["run", "-d", "--name", "six-c", IMG, "sleep", "100000"]);
    await must(["network", "connect", "--ip6", "fd00:71::77", "v6net", "six-c"]);
    const c = JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks.v6net}}", "six-c"]));
    expect([c.GlobalIPv6Address, c.IPAMConfig.IPv6Address]).toEqual(["fd00:71::77", "fd00:71::77"]);
    expect(await must(["exec", "six-c", "ping", "-6", "-c", "1", "-W", "3", "fd00:71::2"])).toContain("1 packets received");
    await must(["rm", "-f", "six-a", "six-b", "six-c"]);
  }, 120_000);

  test("IPv6 errors and pools as dockerd answers them", async () => {
    const bad = async (args: string[], want: string) => {
      const r = await d.docker(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toContain(want);
    };
    await bad(["run", "--rm", "--network", "v6net", "--ip6", "fd00:72::5", IMG, "true"], "Invalid address fd00:72::5: It does not belong to any of this network's subnets");
    await bad(["run", "--rm", "--ip6", "fd00:71::5", IMG, "true"], "user specified IP address is supported on user defined networks only");
    await bad(["run", "--rm", "--network", "v6net", "--link-local-ip", "10.1.2.3", IMG, "true"], "Invalid link-local IP address: [10.1.2.3]");
    // An address that does not parse is refused at create, as dockerd does: no container is left.
    const before = await must(["ps", "-aq"]);
    await bad(["create", "--network", "v6net", "--ip6", "zzz", IMG, "true"], "invalid IPv6 address: zzz");
    const raw = await d.api("/containers/create", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ Image: IMG, Cmd: ["true"], HostConfig: { NetworkMode: "v6net" }, NetworkingConfig: { EndpointsConfig: { v6net: { IPAMConfig: { IPv4Address: "10.0.0.300" } } } } }),
    });
    expect([raw.status, ((await raw.json()) as { message: string }).message]).toEqual([400, "invalid IPv4 address: 10.0.0.300"]);
    expect(await must(["ps", "-aq"])).toBe(before);
    expect((await create({ Name: "v6-overlap", EnableIPv6: true, IPAM: { Config: [{ Subnet: "fd00:71::/48" }] } })).body.message).toContain("Pool overlaps with other one on this address space");
    expect(await create({ Name: "v6-two", EnableIPv6: true, IPAM: { Config: [{ Subnet: "fd00:73::/64" }, { Subnet: "fd00:74::/64" }] } })).toEqual({
      status: 403,
      body: { message: "bridge driver doesn't support multiple subnets" },
    });
    expect(await create({ Name: "v6-gw", EnableIPv6: true, IPAM: { Config: [{ Subnet: "fd00:75::/64", Gateway: "fd00:76::1" }] } })).toEqual({
      status: 400,
      body: { message: "failed to allocate gateway (fd00:76::1): Requested address is out of range" },
    });
    // No v6 subnet given: a unique local /64 is picked (Docker 27+; dockerd 20.10 had no default v6 pool).
    expect((await create({ Name: "v6-auto", EnableIPv6: true })).status).toBe(201);
    const auto = (await inspectNet("v6-auto")).IPAM.Config[1];
    expect(auto.Subnet).toMatch(/^fd[0-9a-f]{2}:[0-9a-f:]+::\/64$/);
    expect(await must(["run", "--rm", "--network", "v6-auto", IMG, "sh", "-c", "ip -6 addr show eth0 scope global"])).toContain(auto.Subnet.replace("::/64", "::2/64"));
    // IPv6-only (API 1.47+'s EnableIPv4: false) cannot be built: refused, not silently dual-stack.
    const v6only = await create({ Name: "v6-only", EnableIPv4: false, EnableIPv6: true });
    expect(v6only.status).toBe(400);
    expect(v6only.body.message).toContain("IPv6-only networks (EnableIPv4: false) are not supported");
    // A v6 subnet without EnableIPv6 is kept, and hands out no v6 address.
    expect((await create({ Name: "v6-off", IPAM: { Config: [{ Subnet: "fd00:77::/64" }] } })).status).toBe(201);
    const off = await inspectNet("v6-off");
    expect([off.EnableIPv6, off.IPAM.Config.map((p: any) => p.Subnet)]).toEqual([false, [expect.stringMatching(/\/24$/), "fd00:77::/64"]]);
    expect(await must(["run", "--rm", "--network", "v6-off", IMG, "sh", "-c", "ip -6 addr show eth0 scope global | wc -l"])).toBe("0");
    // A daemon restart with no container running takes the bridges down; they come back with their v6 gateway.
    await d.stop();
    await d.start();
    const gw6 = auto.Subnet.replace("::/64", "::1");
    expect(await must(["run", "--rm", "--network", "v6-auto", IMG, "ping", "-6", "-c", "1", "-W", "3", gw6])).toContain("1 packets received");
    await must(["network", "rm", "v6net", "v6-auto", "v6-off"]);
  }, 90_000);
});

describe("docker-py", () => {
  test("links, an IPv6 connect with aliases, and NetworkSettings right after", async () => {
    const py = await run(
      [
        "python3",
        "-c",
        `
import docker
c = docker.DockerClient(base_url=${JSON.stringify(d.dockerHost)})
web = c.containers.run(${JSON.stringify(IMG)}, ["sleep", "100000"], name="pyweb", detach=True, environment={"ROLE": "db"}, ports={"5432/tcp": None})
app = c.containers.run(${JSON.stringify(IMG)}, ["sleep", "100000"], name="pyapp", detach=True, links={"pyweb": "db"})
app.reload()
print(app.attrs["HostConfig"]["Links"])
print(app.exec_run(["sh", "-c", "echo $DB_ENV_ROLE $DB_PORT_5432_TCP_PORT; grep -c pyweb /etc/hosts"]).output.decode().split())
net = c.networks.create("pynet6", enable_ipv6=True, ipam=docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="fd00:79::/64")]))
net.connect(app, aliases=["api"], ipv6_address="fd00:79::42")
app.reload()
ep = app.attrs["NetworkSettings"]["Networks"]["pynet6"]
print(ep["GlobalIPv6Address"], ep["Aliases"], ep["IPAMConfig"]["IPv6Address"])
net.disconnect(app)
app.reload()
print(sorted(app.attrs["NetworkSettings"]["Networks"]))
for x in (app, web): x.remove(force=True)
net.remove()
`,
      ],
      { timeoutMs: 90_000 },
    );
    expect(py.stderr).toBe("");
    expect(py.stdout.trim().split("\n")).toEqual(["['/pyweb:/pyapp/db']", "['db', '5432', '1']", "fd00:79::42 ['api'] fd00:79::42", "['bridge']"]);
  }, 120_000);
});

describe("legacy links", () => {
  test("--link on the default bridge: env vars, /etc/hosts and HostConfig.Links as dockerd 20.10 writes them", async () => {
    await must(["run", "-d", "--name", "web", "-e", "FOO=bar", "-e", "HELLO=world x", "--expose", "80", "--expose", "53/udp", "--hostname", "webhost", IMG, "sleep", "100000"]);
    const ip = await must(["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    const out = await must([
      "run",
      "--name",
      "cl",
      "--link",
      "web:db",
      "--link",
      "web",
      IMG,
      "sh",
      "-c",
      "env | grep -E '^(DB|WEB)_' | sort; cat /etc/hosts; ping -c 1 -W 2 db >/dev/null && echo reached",
    ]);
    const lines = out.split("\n");
    const env = lines.filter((l) => /^(DB|WEB)_/.test(l));
    const forAlias = (A: string) => [
      `${A}_ENV_FOO=bar`,
      `${A}_ENV_HELLO=world x`,
      `${A}_NAME=/cl/${A.toLowerCase()}`,
      `${A}_PORT=udp://${ip}:53`,
      `${A}_PORT_53_UDP=udp://${ip}:53`,
      `${A}_PORT_53_UDP_ADDR=${ip}`,
      `${A}_PORT_53_UDP_PORT=53`,
      `${A}_PORT_53_UDP_PROTO=udp`,
      `${A}_PORT_80_TCP=tcp://${ip}:80`,
      `${A}_PORT_80_TCP_ADDR=${ip}`,
      `${A}_PORT_80_TCP_PORT=80`,
      `${A}_PORT_80_TCP_PROTO=tcp`,
    ];
    // (what dockerd 20.10 printed for the same run, with its address)
    expect(env).toEqual([...forAlias("DB"), ...forAlias("WEB")]);
    expect(lines).toContain(`${ip}\tdb webhost web`);
    expect(lines).toContain(`${ip}\tweb webhost`);
    expect(lines.indexOf(`${ip}\tdb webhost web`)).toBeLessThan(lines.length - 2);
    expect(lines).toContain("reached");
    expect(JSON.parse(await must(["inspect", "-f", "{{json .HostConfig.Links}}", "cl"]))).toEqual(["/web:/cl/db", "/web:/cl/web"]);

    // dockerd's refusals.
    const missing = await d.docker(["run", "--rm", "--link", "nosuch:x", IMG, "true"]);
    expect(missing.stderr).toContain("could not get container for nosuch: No such container: nosuch");
    await must(["network", "create", "linknet"]);
    await must(["run", "-d", "--name", "elsewhere", "--network", "linknet", IMG, "sleep", "100000"]);
    const other = await d.docker(["run", "--rm", "--link", "elsewhere:x", IMG, "true"]);
    expect(other.stderr).toContain("Cannot link to /elsewhere, as it does not belong to the default network");
    await must(["stop", "-t", "0", "web"]);
    const stopped = await d.docker(["start", "cl"]);
    expect(stopped.code).not.toBe(0);
    expect(stopped.stderr).toContain("Cannot link to a non running container: /web AS /cl/db");
    // A removed child: the same answer (dockerd keeps the link).
    await must(["rm", "-f", "web"]);
    expect((await d.docker(["start", "cl"])).stderr).toContain("Cannot link to a non running container: /web AS /cl/db");
    expect(JSON.parse(await must(["inspect", "-f", "{{json .HostConfig.Links}}", "cl"]))).toEqual(["/web:/cl/db", "/web:/cl/web"]);
    // docker rm --link drops one link of the parent, as dockerd does; the parent stays.
    await must(["rm", "--link", "/cl/db"]);
    expect(JSON.parse(await must(["inspect", "-f", "{{json .HostConfig.Links}}", "cl"]))).toEqual(["/web:/cl/web"]);
    expect((await d.docker(["rm", "--link", "cl"])).stderr).toContain("Conflict, cannot remove the default link name of the container");
    expect((await d.docker(["rm", "--link", "/nosuch/db"])).stderr).toContain("No such container: nosuch/db");
    await must(["rm", "--link", "/cl/web"]);
    expect(await must(["inspect", "-f", "{{json .HostConfig.Links}}", "cl"])).toBe("null");
    await must(["start", "cl"]);
    await must(["rm", "-f", "cl"]);
  }, 90_000);

  test("--link on a user network is only a name: EndpointSettings.Links, no env, no check", async () => {
    await must(["run", "-d", "--name", "ul", "--network", "linknet", "--link", "elsewhere:aa", IMG, "sleep", "100000"]);
    expect(await must(["inspect", "-f", "{{json .HostConfig.Links}}", "ul"])).toBe("null");
    expect(JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks.linknet.Links}}", "ul"]))).toEqual(["elsewhere:aa"]);
    expect(await must(["exec", "ul", "sh", "-c", "env | grep -c '^AA_' || true"])).toBe("0");
    // The alias resolves for the linking container only (Docker's embedded DNS does the same).
    const target = await must(["inspect", "-f", "{{.NetworkSettings.Networks.linknet.IPAddress}}", "elsewhere"]);
    expect(await must(["exec", "ul", "nslookup", "aa", "127.0.0.11"])).toContain(`Address: ${target}`);
    expect((await d.docker(["run", "--rm", "--network", "linknet", IMG, "nslookup", "aa", "127.0.0.11"])).stdout).not.toContain(`Address: ${target}`);
    // network connect --link does the same on the connected network.
    await must(["run", "-d", "--name", "late", IMG, "sleep", "100000"]);
    await must(["network", "connect", "--link", "elsewhere:bb", "linknet", "late"]);
    expect(JSON.parse(await must(["inspect", "-f", "{{json .NetworkSettings.Networks.linknet.Links}}", "late"]))).toEqual(["elsewhere:bb"]);
    expect(await must(["exec", "late", "nslookup", "bb", "127.0.0.11"])).toContain(`Address: ${target}`);
    await must(["rm", "-f", "late"]);
    expect((await d.docker(["run", "--rm", "--network", "linknet", "--link", "nosuch:x", IMG, "true"])).code).toBe(0);
    await must(["rm", "-f", "ul", "elsewhere"]);
    await must(["network", "rm", "linknet"]);
  }, 60_000);
});
