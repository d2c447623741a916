/**
 * netd through its Connect API on a real daemon: attach gives namespaces that reach
 * each other by IP, embedded DNS answers container names and aliases, published
 * TCP/UDP ports answer on 127.0.0.1, bad input fails cleanly, and nothing leaks.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { arcboxHome } from "../../lib/home.ts";
import { netNames } from "../../services/netd/core/names.ts";
import { waitFor } from "../helpers/wait.ts";
import { startFakeUpstreamDns } from "../helpers/fake-dns.ts";

let d: TestDaemon;
let c: ServiceClients;
const procs: ReturnType<typeof Bun.spawn>[] = [];
const scratchDirs: string[] = [];
const scratch = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratchDirs.push(dir);
  return dir;
};
const A = "a1".repeat(32);
const B = "b2".repeat(32);
const C = "c3".repeat(32);

// A tiny upstream resolver on a loopback address: names the embedded DNS does not know
// are forwarded to it (the daemon reads it as the host's resolv.conf).
const UPSTREAM = "127.0.0.77";
let upstream: { close(): void } | undefined;

beforeAll(async () => {
  const resolv = join(scratch("netd-resolv-"), "resolv.conf");
  writeFileSync(resolv, `nameserver ${UPSTREAM}\n`);
  process.env.ARCBOX_RESOLV_CONF = resolv;
  upstream = await startFakeUpstreamDns(UPSTREAM, [192, 0, 2, 99]);
  d = new TestDaemon("arcbox-netd-");
  await d.start();
  c = new ServiceClients(arcboxHome(d.home));
}, 60_000);

afterAll(async () => {
  upstream?.close();
  for (const p of procs) p.kill("SIGKILL");
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  for (const id of [A, B, C]) await c.networks.detach({ containerId: id }).catch(() => undefined);
  const names = netNames(arcboxHome(d.home).root);
  await d.dispose();
  // The daemon stopped with nothing attached: no interface, namespace or chain of ours is left.
  // The kernel destroys deleted namespaces (and their veths) asynchronously: allow it a moment.
  const check = () => run(["sh", "-c", `ip -br link | grep ${names.ifPrefix}; ip netns | grep ${names.netnsPrefix}; iptables-save | grep ${names.tag}; true`]);
  let leftovers = await check();
  for (let i = 0; i < 100 && leftovers.stdout !== ""; i++) {
    await Bun.sleep(50);
    leftovers = await check();
  }
  expect(leftovers.stdout).toBe("");
}, 60_000);

const nsName = (path: string) => path.split("/").pop()!;
const inNs = (path: string, argv: string[]) => run(["ip", "netns", "exec", nsName(path), ...argv], { timeoutMs: 15_000 });

test("predefined networks exist and a user network gets its own subnet", async () => {
  const list = await c.networks.list({});
  expect(list.networks.map((n) => n.name).sort()).toEqual(["bridge", "host", "none"]);
  const bridge = list.networks.find((n) => n.name === "bridge")!;
  expect(bridge.ipam[0].subnet).toMatch(/^10\.21[345]\./);
  const created = await c.networks.create({ name: "front", labels: { tier: "web" } });
  expect(created.id).toMatch(/^[0-9a-f]{64}$/);
  const net = (await c.networks.inspect({ network: "front" })).network!;
  expect(net.ipam[0].subnet).not.toBe(bridge.ipam[0].subnet);
  const links = await run(["ip", "-br", "addr", "show", net.bridgeName]);
  expect(links.stdout).toContain(net.ipam[0].gateway);
});

test("bad network input fails with Docker's codes and builds nothing", async () => {
  await expect(c.networks.create({ name: "front" })).rejects.toThrow(/already exists/);
  await c.networks.create({ name: "fixed", ipam: [{ subnet: "10.77.0.0/24", gateway: "10.77.0.1" }] });
  await expect(c.networks.create({ name: "overlap", ipam: [{ subnet: "10.77.0.128/25" }] })).rejects.toThrow(/overlaps/);
  await expect(c.networks.create({ name: "badgw", ipam: [{ subnet: "10.78.0.0/24", gateway: "10.79.0.1" }] })).rejects.toThrow(/no matching subnet for gateway/);
  await expect(c.networks.remove({ network: "bridge" })).rejects.toThrow(/pre-defined/);
  // Values that reach ip/iptables command lines are validated, never passed through.
  await expect(c.networks.create({ name: "inject", options: { "com.docker.network.bridge.name": "br0\nlink del lo" } })).rejects.toThrow(/invalid bridge name/);
  await expect(c.networks.attach({ containerId: C, networkMode: "fixed", ports: [{ protocol: "tcp", containerPort: 80, hostIp: "1.2.3.4/32 -j ACCEPT\n" }] })).rejects.toThrow(/invalid host IP/);
  await expect(c.networks.attach({ containerId: C, networkMode: "fixed", endpoints: [{ network: "fixed", macAddress: "02:42:00:00:00:01\nlink del lo" }] })).rejects.toThrow(/invalid MAC/);
  expect((await c.networks.getAttachment({ containerId: C })).attachment).toBeUndefined();
  const names = (await c.networks.list({})).networks.map((n) => n.name);
  expect(names).not.toContain("overlap");
  expect(names).not.toContain("badgw");
});

test("attached namespaces reach each other by IP, and by name through the embedded DNS", async () => {
  const a = await c.networks.attach({ containerId: A, containerName: "web", networkMode: "front", endpoints: [{ network: "front", aliases: ["www"] }] });
  const b = await c.networks.attach({ containerId: B, containerName: "client", networkMode: "front" });
  const ipA = a.endpoints[0].ipAddress;
  const addr = await inNs(a.netnsPath, ["ip", "-4", "-o", "addr", "show", "eth0"]);
  expect(addr.stdout).toContain(`${ipA}/24`);
  const ping = await inNs(b.netnsPath, ["busybox", "ping", "-c", "1", "-W", "3", ipA]);
  expect(ping.code).toBe(0);
  expect(await Bun.file(b.resolvConfPath).text()).toContain("nameserver 127.0.0.11");
  expect(await Bun.file(a.hostsPath).text()).toContain(`${ipA}\t`);
  for (const name of ["web", "www", A.slice(0, 12), "web.front"]) {
    const ns = await inNs(b.netnsPath, ["busybox", "nslookup", name, "127.0.0.11"]);
    expect(ns.stdout).toContain(`Address: ${ipA}`);
  }
  // Reverse lookups name the container on its network.
  const ptr = await inNs(b.netnsPath, ["busybox", "nslookup", ipA, "127.0.0.11"]);
  expect(ptr.stdout).toContain("web.front");
  // Other names are forwarded to the host's resolver.
  const fwd = await inNs(b.netnsPath, ["busybox", "nslookup", "example.test", "127.0.0.11"]);
  expect(fwd.stdout).toContain("Address: 192.0.2.99");
  // The default bridge has no name resolution between containers.
  const onDefault = await c.networks.attach({ containerId: C, containerName: "lonely", networkMode: "bridge" });
  expect(await Bun.file(onDefault.resolvConfPath).text()).not.toContain("127.0.0.11");
  await c.networks.detach({ containerId: C });
});

test("published TCP and UDP ports answer on 127.0.0.1; a taken port fails cleanly", async () => {
  await c.networks.detach({ containerId: A });
  const a = await c.networks.attach({
    containerId: A,
    containerName: "web",
    networkMode: "front",
    ports: [
      { protocol: "tcp", containerPort: 80, hostPort: 0 },
      { protocol: "udp", containerPort: 5353, hostPort: 0 },
    ],
  });
  const tcpPort = a.ports.find((p) => p.protocol === "tcp")!.hostPort;
  const udpPort = a.ports.find((p) => p.protocol === "udp")!.hostPort;
  expect(tcpPort).toBeGreaterThan(0);
  const www = scratch("netd-www-");
  writeFileSync(join(www, "index.html"), "hello from the netns\n");
  procs.push(Bun.spawn(["ip", "netns", "exec", nsName(a.netnsPath), "busybox", "httpd", "-f", "-p", "80", "-h", www]));
  const udpEcho = `const s = await Bun.udpSocket({ hostname: "0.0.0.0", port: 5353, socket: { data(s, b, p, a) { s.send("echo:" + b.toString(), p, a); } } });`;
  procs.push(Bun.spawn(["ip", "netns", "exec", nsName(a.netnsPath), process.execPath, "-e", udpEcho]));
  let body = "";
  await waitFor("published TCP port", async () => {
    body = await fetch(`http://127.0.0.1:${tcpPort}/`).then(
      (r) => r.text(),
      () => "",
    );
    return body.length > 0;
  });
  expect(body).toBe("hello from the netns\n");
  let reply = "";
  const client = await Bun.udpSocket({
    hostname: "127.0.0.1",
    socket: {
      data(_s, b) {
        reply = b.toString();
      },
      error() {},
    },
  });
  await waitFor("published UDP port", async () => {
    client.send("ping", udpPort, "127.0.0.1");
    await Bun.sleep(100);
    return reply !== "";
  });
  client.close();
  expect(reply).toBe("echo:ping");

  // Same host port again: Docker's error, and the failed container leaves no namespace.
  const err = await c.networks.attach({ containerId: C, containerName: "clash", networkMode: "front", ports: [{ protocol: "tcp", containerPort: 80, hostPort: tcpPort }] }).catch((e) => e as Error);
  expect(String(err)).toContain("address already in use");
  expect((await run(["ip", "netns"])).stdout).not.toContain(C.slice(0, 16));
  expect((await c.networks.getAttachment({ containerId: C })).attachment).toBeUndefined();
});

test("a UDP flow that started before the port was published reaches the container", async () => {
  // The client sends first (nothing listens: conntrack records an un-NATed flow)...
  const probe = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  const hostPort = probe.port;
  probe.close();
  let reply = "";
  const client = await Bun.udpSocket({
    hostname: "127.0.0.1",
    socket: {
      data(_s, b) {
        reply = b.toString();
      },
      error() {},
    },
  });
  client.send("early", hostPort, "127.0.0.1");
  await Bun.sleep(100);
  // ...then the port is published, and the same flow must now be DNATed to the container.
  const c2 = await c.networks.attach({ containerId: C, containerName: "udp-late", networkMode: "front", ports: [{ protocol: "udp", containerPort: 5454, hostPort }] });
  const udpEcho = `await Bun.udpSocket({ hostname: "0.0.0.0", port: 5454, socket: { data(s, b, p, a) { s.send("echo:" + b.toString(), p, a); } } });`;
  const echo = Bun.spawn(["ip", "netns", "exec", nsName(c2.netnsPath), process.execPath, "-e", udpEcho]);
  procs.push(echo);
  await waitFor("the late-published UDP port", async () => {
    client.send("late", hostPort, "127.0.0.1");
    await Bun.sleep(100);
    return reply !== "";
  });
  client.close();
  expect(reply).toBe("echo:late");
  echo.kill("SIGKILL");
  await c.networks.detach({ containerId: C });
}, 30_000);

test("a network in use cannot be removed; detach frees it", async () => {
  await expect(c.networks.remove({ network: "front" })).rejects.toThrow(/active endpoints/);
  await c.networks.detach({ containerId: A });
  await c.networks.detach({ containerId: B });
  await c.networks.detach({ containerId: B }); // idempotent
  const before = (await c.networks.inspect({ network: "front" })).network!;
  expect(before.containers).toHaveLength(0);
  await c.networks.remove({ network: "front" });
  expect((await run(["ip", "link", "show", before.bridgeName])).code).not.toBe(0);
  expect((await c.networks.prune({})).deleted).toEqual(["fixed"]);
});

test("a restart rebuilds a lost bridge and firewall, re-enslaves veths and removes leftover namespaces", async () => {
  await c.networks.create({ name: "rebuilt" });
  const a = await c.networks.attach({ containerId: A, containerName: "a", networkMode: "rebuilt", ports: [{ protocol: "tcp", containerPort: 80, hostPort: 0 }] });
  const b = await c.networks.attach({ containerId: B, containerName: "b", networkMode: "rebuilt" });
  const bridge = (await c.networks.inspect({ network: "rebuilt" })).network!.bridgeName;
  const names = netNames(arcboxHome(d.home).root);
  await d.stop();
  // Attached containers keep their networking while the daemon is down...
  expect((await run(["ip", "link", "show", bridge])).code).toBe(0);
  // ...then something wipes the bridge and our chains, and a stray namespace appears.
  await run(["ip", "link", "del", bridge]);
  await run(["iptables", "-t", "nat", "-F", names.chains.dnat]);
  const stray = `${names.netnsPrefix}deadbeefdeadbeef`;
  await run(["ip", "netns", "add", stray]);
  await d.start();
  await c.networks.list({});
  expect((await run(["ip", "-br", "addr", "show", bridge])).stdout).toContain(a.endpoints[0].gateway);
  expect((await run(["ip", "netns"])).stdout).not.toContain(stray);
  expect((await run(["iptables-save", "-t", "nat"])).stdout).toContain(`--to-destination ${a.endpoints[0].ipAddress}:80`);
  const ping = await inNs(b.netnsPath, ["busybox", "ping", "-c", "1", "-W", "3", a.endpoints[0].ipAddress]);
  expect(ping.code).toBe(0);
  await c.networks.detach({ containerId: A });
  await c.networks.detach({ containerId: B });
  await c.networks.remove({ network: "rebuilt" });
}, 60_000);

test("a network's host_binding_ipv4 is the default address of its published ports", async () => {
  await c.networks.create({ name: "local-only", options: { "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1" } });
  const a = await c.networks.attach({ containerId: C, containerName: "lo", networkMode: "local-only", ports: [{ protocol: "tcp", containerPort: 80, hostPort: 0 }] });
  expect(a.ports[0].hostIp).toBe("127.0.0.1");
  expect((await run(["iptables-save", "-t", "nat"])).stdout).toContain(`-d 127.0.0.1/32 -p tcp -m tcp --dport ${a.ports[0].hostPort} -j DNAT`);
  await c.networks.detach({ containerId: C });
  await c.networks.remove({ network: "local-only" });
}, 30_000);
