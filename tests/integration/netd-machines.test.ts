/**
 * netd's machine networking through its Connect API on a real daemon, without a VM:
 * AttachMachine gives a TAP on the machine bridge with a stable MAC and address, is
 * idempotent and survives netd restarts; DetachMachine leaves nothing behind. A test
 * "machine" is a network namespace behind a veth on the machine bridge carrying the
 * leased MAC (a TAP needs a process holding it): real DHCP clients (busybox udhcpc,
 * ISC dhclient) configure it from netd's DHCP server, and it uses netd's DNS, the
 * host alias, outbound NAT and forwarded ports.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { randomBytes } from "node:crypto";
import { REPO, TestDaemon, run } from "../helpers/daemon.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { arcboxHome, debugSocket } from "../../lib/home.ts";
import { netNames, type NetNames } from "../../services/netd/core/names.ts";
import { waitFor } from "../helpers/wait.ts";
import { startFakeUpstreamDns } from "../helpers/fake-dns.ts";

let d: TestDaemon;
let c: ServiceClients;
let names: NetNames;
const scratch = mkdtempSync(join(tmpdir(), "netd-machines-"));
const procs: ReturnType<typeof Bun.spawn>[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

// A tiny upstream resolver on a loopback address: names netd does not know are
// forwarded to it (the daemon reads it as the host's resolv.conf).
const UPSTREAM = "127.0.0.78";
let upstream: { close(): void } | undefined;

beforeAll(async () => {
  const resolv = join(scratch, "resolv.conf");
  writeFileSync(resolv, `nameserver ${UPSTREAM}\n`);
  process.env.ARCBOX_RESOLV_CONF = resolv;
  upstream = await startFakeUpstreamDns(UPSTREAM, [192, 0, 2, 98]);
  d = new TestDaemon("arcbox-netd-machines-");
  await d.start();
  c = new ServiceClients(arcboxHome(d.home));
  names = netNames(arcboxHome(d.home).root);
}, 60_000);

afterAll(async () => {
  upstream?.close();
  for (const p of procs) p.kill("SIGKILL");
  for (const f of cleanups.reverse()) await f().catch(() => undefined);
  rmSync(scratch, { recursive: true, force: true });
  const leases = await c.machineNetworks.listMachineLeases({}).catch(() => undefined);
  for (const l of leases?.leases ?? []) await c.machineNetworks.detachMachine({ machine: l.machine }).catch(() => undefined);
  await d.dispose();
  const check = () => run(["sh", "-c", `ip -br link | grep ${names.ifPrefix}; iptables-save | grep ${names.tag}; true`]);
  let leftovers = await check();
  for (let i = 0; i < 100 && leftovers.stdout !== ""; i++) {
    await Bun.sleep(50);
    leftovers = await check();
  }
  expect(leftovers.stdout).toBe("");
}, 60_000);

const link = async (name: string) => {
  const r = await run(["ip", "-j", "-d", "link", "show", name]);
  return r.code === 0 ? (JSON.parse(r.stdout)[0] as { ifname: string; master?: string; flags: string[]; linkinfo?: { info_kind?: string; info_data?: { type?: string } } }) : undefined;
};
const netdPid = async () => (await c.health("netd").check({})).pid;
const netdState = async (home = d.home) =>
  (await (await fetch("http://netd/state", { unix: debugSocket(arcboxHome(home), "netd") } as RequestInit)).json()) as { dhcp: { listening: string | null; answered: number; ignored: number } };

async function ipBatch(lines: string[], netns?: string): Promise<void> {
  const r = await run(["ip", ...(netns ? ["-n", netns] : []), "-batch", "-"], { stdin: `${lines.join("\n")}\n` });
  expect(r.stderr).toBe("");
}

/** A stand-in for a VM: a namespace whose eth0 (a veth on the machine bridge) has the machine's MAC. */
async function fakeMachine(bridge: string, mac: string) {
  const id = randomBytes(3).toString("hex");
  const ns = `abtest-vmnet-${id}`;
  const veth = `vmnt${id}`;
  await run(["ip", "netns", "add", ns]);
  cleanups.push(async () => {
    await run(["ip", "netns", "del", ns]);
    await run(["ip", "link", "del", veth]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  });
  await ipBatch([`link add ${veth} type veth peer name eth0 netns ${ns}`, `link set ${veth} master ${bridge}`, `link set ${veth} up`]);
  await ipBatch(["link set lo up", `link set eth0 address ${mac}`, "link set eth0 up"], ns);
  const exec = (argv: string[], env: Record<string, string> = {}, timeoutMs = 20_000) => run(["ip", "netns", "exec", ns, ...argv], { env, timeoutMs });
  return { ns, veth, exec };
}
type FakeMachine = Awaited<ReturnType<typeof fakeMachine>>;

/** busybox udhcpc, once, configuring eth0 the way a guest's /init does; returns the script's environment. */
async function udhcpc(m: FakeMachine, hostname: string, tries = 5): Promise<Record<string, string>> {
  const out = join(scratch, `${m.ns}.udhcpc.env`);
  rmSync(out, { force: true });
  const script = join(scratch, "udhcpc.sh");
  writeFileSync(
    script,
    [
      "#!/bin/sh",
      'case "$1" in',
      '  deconfig) ip addr flush dev "$interface" ;;',
      '  bound|renew) ip addr flush dev "$interface"; ip addr add "$ip/$mask" broadcast "$broadcast" dev "$interface"; ip route replace default via "$router"; env > "$OUT" ;;',
      "esac",
      "",
    ].join("\n"),
  );
  chmodSync(script, 0o755);
  const r = await m.exec(["busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", String(tries), "-T", "1", "-s", script, "-x", `hostname:${hostname}`], { OUT: out });
  if (r.code !== 0) throw new Error(`udhcpc failed (${r.code}): ${r.stderr}`);
  return parseEnv(readFileSync(out, "utf8"));
}

const parseEnv = (text: string) =>
  Object.fromEntries(
    text
      .split("\n")
      .filter((l) => l.includes("="))
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).replace(/^'|'$/g, "")]),
  );

test("AttachMachine gives a persistent TAP on the machine bridge, a stable MAC and address; it is idempotent", async () => {
  const a = await c.machineNetworks.attachMachine({ machine: "alpha" });
  expect(a.tap).toMatch(new RegExp(`^${names.ifPrefix}t[0-9a-f]{6}$`));
  expect(a.bridge).toBe(names.machineBridge);
  // Locally administered, unicast.
  expect(a.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  expect(parseInt(a.mac.slice(0, 2), 16) & 0x03).toBe(0x02);
  expect(a.ip).toMatch(/^10\.21[345]\.\d+\.\d+$/);
  expect(a.prefixLen).toBe(24);
  expect(a.dns).toBe(a.gateway);
  expect(a.domain).toBe("arcbox.local");
  expect(a.hostAliasIp).not.toBe(a.gateway);
  const tap = await link(a.tap);
  expect(tap?.master).toBe(a.bridge);
  expect(tap?.linkinfo?.info_kind).toBe("tun");
  expect(tap?.linkinfo?.info_data?.type).toBe("tap");
  const addrs = await run(["ip", "-br", "-4", "addr", "show", a.bridge]);
  expect(addrs.stdout).toContain(`${a.gateway}/24`);
  expect(addrs.stdout).toContain(`${a.hostAliasIp}/32`);
  // Again: same answer, nothing duplicated.
  const again = await c.machineNetworks.attachMachine({ machine: "alpha" });
  expect(again).toEqual(a);
  const b = await c.machineNetworks.attachMachine({ machine: "beta" });
  expect(b.ip).not.toBe(a.ip);
  expect(b.mac).not.toBe(a.mac);
  expect(b.tap).not.toBe(a.tap);
  const leases = await c.machineNetworks.listMachineLeases({});
  expect(leases.leases.map((l) => [l.machine, l.ip, l.mac, l.tap])).toEqual([
    ["alpha", a.ip, a.mac, a.tap],
    ["beta", b.ip, b.mac, b.tap],
  ]);
  expect(leases.subnet).toBe(`${a.gateway.replace(/\.1$/, ".0")}/24`);
  // The machine subnet is never handed to a network.
  await c.networks.create({ name: "other" });
  const other = (await c.networks.inspect({ network: "other" })).network!;
  expect(other.ipam[0].subnet).not.toBe(leases.subnet);
  await c.networks.remove({ network: "other" });
  // Outbound NAT and forwarding for the machine subnet are in netd's tagged chains.
  const nat = (await run(["iptables-save", "-t", "nat"])).stdout;
  expect(nat).toContain(`-A ${names.chains.nat} -s ${leases.subnet} ! -o ${a.bridge} -j MASQUERADE`);
  expect(nat).toContain(`-A ${names.chains.dnat} -d ${a.hostAliasIp}/32 -i ${a.bridge} -j DNAT --to-destination 127.0.0.1`);
  const filter = (await run(["iptables-save", "-t", "filter"])).stdout;
  expect(filter).toContain(`-A ${names.chains.forward} -i ${a.bridge} -j ACCEPT`);
});

test("bad machine names are refused and build nothing", async () => {
  for (const bad of ["", "-x", "a b", "x\nlink del lo", "a".repeat(64)]) {
    await expect(c.machineNetworks.attachMachine({ machine: bad })).rejects.toThrow(/invalid machine name/);
  }
  expect((await c.machineNetworks.listMachineLeases({})).leases.map((l) => l.machine)).toEqual(["alpha", "beta"]);
  await expect(c.machineNetworks.setMachinePorts({ machine: "nope", ports: [] })).rejects.toThrow(/not attached/);
  await expect(c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "sctp", port: 80 }] })).rejects.toThrow(/invalid protocol/);
  await expect(c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "tcp", port: 80, hostIp: "1.2.3.4 -j ACCEPT" }] })).rejects.toThrow(/invalid host IP/);
  await expect(c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "tcp", port: 0 }] })).rejects.toThrow(/invalid machine port/);
});

let alphaNs: FakeMachine;
let betaNs: FakeMachine;
let forwardedPort = 0;

test("busybox udhcpc gets the machine's address, router, DNS, domain and hostname from netd's DHCP server", async () => {
  const a = await c.machineNetworks.attachMachine({ machine: "alpha" });
  alphaNs = await fakeMachine(a.bridge, a.mac);
  const env = await udhcpc(alphaNs, "alpha");
  expect(env.ip).toBe(a.ip);
  expect(env.mask).toBe("24");
  expect(env.subnet).toBe("255.255.255.0");
  expect(env.router).toBe(a.gateway);
  expect(env.dns.trim()).toBe(a.dns);
  expect(env.domain).toBe("arcbox.local");
  expect(env.hostname).toBe("alpha");
  expect(env.serverid).toBe(a.gateway);
  expect(env.lease).toBe("86400");
  expect(env.broadcast).toBe(a.gateway.replace(/\.1$/, ".255"));
  expect((await alphaNs.exec(["ip", "-4", "-o", "addr", "show", "eth0"])).stdout).toContain(`${a.ip}/24`);
  const lease = (await c.machineNetworks.listMachineLeases({})).leases.find((l) => l.machine === "alpha")!;
  expect(lease.clientHostname).toBe("alpha");
  expect(Number(lease.expiresUnix)).toBeGreaterThan(Date.now() / 1000 + 80_000);
  expect((await netdState()).dhcp.listening).toBe(a.gateway);
  // The machine reaches the gateway, and the host reaches the machine's own address.
  expect((await alphaNs.exec(["busybox", "ping", "-c", "1", "-W", "3", a.gateway])).code).toBe(0);
  expect((await run(["busybox", "ping", "-c", "1", "-W", "3", a.ip])).code).toBe(0);
}, 60_000);

test("ISC dhclient gets its lease too, and again from its lease file (INIT-REBOOT)", async () => {
  const b = await c.machineNetworks.attachMachine({ machine: "beta" });
  betaNs = await fakeMachine(b.bridge, b.mac);
  const out = join(scratch, "dhclient.env");
  const script = join(scratch, "dhclient.sh");
  writeFileSync(
    script,
    [
      "#!/bin/sh",
      'case "$reason" in',
      // dhclient scrubs the environment: the output path is written into the script.
      `  BOUND|RENEW|REBOOT) ip addr flush dev "$interface"; ip addr add "$new_ip_address/$new_subnet_mask" dev "$interface"; ip route replace default via "$new_routers"; env >> ${out}; echo ---- >> ${out} ;;`,
      "esac",
      "",
    ].join("\n"),
  );
  chmodSync(script, 0o755);
  const lf = join(scratch, "dhclient.leases");
  const pf = join(scratch, "dhclient.pid");
  const dhclient = (extra: string[]) => betaNs.exec(["dhclient", "-4", "-1", "-v", "-sf", script, "-lf", lf, "-pf", pf, ...extra, "eth0"], {}, 30_000);
  const r = await dhclient([]);
  expect(r.code).toBe(0);
  cleanups.push(async () => {
    if (existsSync(pf)) await run(["kill", readFileSync(pf, "utf8").trim()]);
  });
  const first = parseEnv(readFileSync(out, "utf8").split("----")[0]);
  expect(first.reason).toBe("BOUND");
  expect(first.new_ip_address).toBe(b.ip);
  expect(first.new_subnet_mask).toBe("255.255.255.0");
  expect(first.new_routers).toBe(b.gateway);
  expect(first.new_domain_name_servers).toBe(b.dns);
  expect(first.new_domain_name).toBe("arcbox.local");
  expect(first.new_host_name).toBe("beta");
  expect(first.new_dhcp_server_identifier).toBe(b.gateway);
  // dhclient went to the background holding the lease; a new one starts from its lease file.
  const before = (await netdState()).dhcp.answered;
  if (existsSync(pf)) await run(["kill", readFileSync(pf, "utf8").trim()]);
  await dhclient([]);
  expect((await netdState()).dhcp.answered).toBeGreaterThan(before);
  const envs = readFileSync(out, "utf8")
    .split("----")
    .filter((x) => x.includes("reason="));
  const last = parseEnv(envs[envs.length - 1]);
  expect(["RENEW", "REBOOT", "BOUND"]).toContain(last.reason);
  expect(last.new_ip_address).toBe(b.ip);
}, 90_000);

test("netd's DNS on the machine gateway: machine names, <name>.arcbox.local, host.arcbox.internal, upstream; machines only", async () => {
  const leases = await c.machineNetworks.listMachineLeases({});
  const ipOf = (m: string) => leases.leases.find((l) => l.machine === m)!.ip;
  const gw = leases.gateway;
  const lookup = async (m: FakeMachine, name: string) => (await m.exec(["busybox", "nslookup", name, gw])).stdout;
  expect(await lookup(alphaNs, "beta")).toContain(`Address: ${ipOf("beta")}`);
  expect(await lookup(betaNs, "alpha.arcbox.local")).toContain(`Address: ${ipOf("alpha")}`);
  expect(await lookup(betaNs, "ALPHA")).toContain(`Address: ${ipOf("alpha")}`);
  expect(await lookup(alphaNs, "host.arcbox.internal")).toContain(`Address: ${leases.hostAliasIp}`);
  expect(await lookup(alphaNs, ipOf("beta"))).toContain("beta.arcbox.local");
  expect(await lookup(alphaNs, "example.test")).toContain("Address: 192.0.2.98");
  // Containers' names are not machines' business, and vice versa.
  await c.networks.create({ name: "ctr" });
  const ctr = await c.networks.attach({ containerId: "d4".repeat(32), containerName: "web", networkMode: "ctr" });
  try {
    expect(await lookup(alphaNs, "web")).not.toContain(ctr.endpoints[0].ipAddress);
    const fromCtr = await run(["ip", "netns", "exec", ctr.netnsPath.split("/").pop()!, "busybox", "nslookup", "alpha", "127.0.0.11"]);
    expect(fromCtr.stdout).not.toContain(ipOf("alpha"));
  } finally {
    await c.networks.detach({ containerId: "d4".repeat(32) });
    await c.networks.remove({ network: "ctr" });
  }
  // Only the machine bridge may query it: the host itself (or anything else) gets no answer.
  const fromHost = await run(["busybox", "nslookup", "-timeout=1", "-retry=0", "alpha", gw], { timeoutMs: 10_000 });
  expect(fromHost.stdout).not.toContain(ipOf("alpha"));
}, 60_000);

test("host.arcbox.internal reaches a service on the host's 127.0.0.1", async () => {
  const leases = await c.machineNetworks.listMachineLeases({});
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("hello from the host's loopback\n") });
  try {
    // (Debian's static busybox wget crashes here; nc speaks the HTTP/1.0 needed.)
    const r = await alphaNs.exec(["sh", "-c", `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 ${leases.hostAliasIp} ${server.port}`]);
    expect(r.stdout).toStartWith("HTTP/1.1 200");
    expect(r.stdout).toEndWith("\r\n\r\nhello from the host's loopback\n");
  } finally {
    server.stop(true);
  }
}, 30_000);

test("outbound NAT: a machine reaches a network only the host can route to, seen with the host's address", async () => {
  // An "outside" namespace on a /30 that knows no route back to the machine subnet.
  const id = randomBytes(2);
  const outside = `abtest-vmnet-out-${id.toString("hex")}`;
  const hostSide = `vmno${id.toString("hex")}`;
  const net = `198.18.${id[0]}`;
  await run(["ip", "netns", "add", outside]);
  cleanups.push(async () => {
    await run(["ip", "netns", "del", outside]);
    await run(["ip", "link", "del", hostSide]);
  });
  await ipBatch([`link add ${hostSide} type veth peer name eth0 netns ${outside}`, `addr add ${net}.1/30 dev ${hostSide}`, `link set ${hostSide} up`]);
  await ipBatch([`addr add ${net}.2/30 dev eth0`, "link set eth0 up", "link set lo up"], outside);
  const echo = Bun.spawn(
    [
      "ip",
      "netns",
      "exec",
      outside,
      process.execPath,
      "-e",
      `Bun.listen({ hostname: "0.0.0.0", port: 7777, socket: { open(s) { s.end("peer=" + s.remoteAddress + "\\n"); }, data() {} } }); console.log("ready");`,
    ],
    { stdout: "pipe" },
  );
  procs.push(echo);
  await echo.stdout.getReader().read();
  const got = await alphaNs.exec(["busybox", "nc", "-w", "5", `${net}.2`, "7777"]);
  expect(got.stdout.trim()).toBe(`peer=${net}.1`);
}, 30_000);

test("SetMachinePorts forwards host 127.0.0.1:P (and the host's addresses) to the machine; replacing the set drops old rules", async () => {
  const www = join(scratch, "www");
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, "index.html"), "hello from the machine\n");
  const port = 20000 + (randomBytes(2).readUInt16BE() % 20000);
  forwardedPort = port;
  procs.push(Bun.spawn(["ip", "netns", "exec", alphaNs.ns, "busybox", "httpd", "-f", "-p", String(port), "-h", www]));
  const r = await c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "tcp", port }] });
  expect(r.failed).toEqual([]);
  expect(r.ports).toEqual([expect.objectContaining({ protocol: "tcp", port, hostPort: port, hostIp: "" })]);
  const body = await waitFor("forwarded port answering", async () => {
    const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
    return res?.ok ? res.text() : undefined;
  });
  expect(body).toBe("hello from the machine\n");
  // The host's other addresses forward too.
  const global = JSON.parse((await run(["ip", "-j", "-4", "addr", "show", "scope", "global"])).stdout) as { ifname: string; addr_info: { local: string }[] }[];
  const hostIp = global.find((l) => !l.ifname.startsWith("ab") && !l.ifname.startsWith("vmn") && l.addr_info.length)?.addr_info[0].local;
  expect(hostIp).toBeDefined();
  expect(await (await fetch(`http://${hostIp}:${port}/`)).text()).toBe("hello from the machine\n");
  // A taken host port is reported, the others still forwarded.
  const taken = Bun.listen({ hostname: "0.0.0.0", port: 0, socket: { data() {} } });
  try {
    const r2 = await c.machineNetworks.setMachinePorts({
      machine: "alpha",
      ports: [
        { protocol: "tcp", port },
        { protocol: "tcp", port: 80, hostPort: taken.port },
      ],
    });
    expect(r2.ports.map((p) => p.hostPort)).toEqual([port]);
    expect(r2.failed.join()).toMatch(/address already in use/);
  } finally {
    taken.stop(true);
  }
  await c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [] });
  expect((await run(["iptables-save", "-t", "nat"])).stdout).not.toContain(`--dport ${port} -j DNAT`);
  // Forwarded again for the detach test to check it goes with the machine.
  await c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "tcp", port }] });
  expect((await run(["iptables-save", "-t", "nat"])).stdout).toContain(`--dport ${port} -j DNAT`);
}, 30_000);

test("two daemons' DHCP servers each answer only their own machines, broadcast and unicast", async () => {
  const d2 = new TestDaemon("arcbox-netd-machines2-");
  cleanups.push(() => d2.dispose());
  await d2.start();
  const c2 = new ServiceClients(arcboxHome(d2.home));
  cleanups.push(() => c2.machineNetworks.detachMachine({ machine: "gamma" }));
  const g = await c2.machineNetworks.attachMachine({ machine: "gamma" });
  const mine = await c.machineNetworks.listMachineLeases({});
  expect(g.bridge).not.toBe(mine.bridge);
  expect(g.gateway).not.toBe(mine.gateway);
  const gammaNs = await fakeMachine(g.bridge, g.mac);
  const before1 = (await netdState()).dhcp;
  const env = await udhcpc(gammaNs, "gamma");
  expect(env.ip).toBe(g.ip);
  expect(env.serverid).toBe(g.gateway);
  // Our netd saw gamma's broadcasts (its socket is host-wide) and said nothing.
  const after1 = (await netdState()).dhcp;
  expect(after1.answered).toBe(before1.answered);
  expect(after1.ignored).toBeGreaterThan(before1.ignored);
  // And the other way round: alpha still gets our lease, the other daemon ignores it.
  const before2 = (await netdState(d2.home)).dhcp;
  const alpha = mine.leases.find((l) => l.machine === "alpha")!;
  expect((await udhcpc(alphaNs, "alpha")).ip).toBe(alpha.ip);
  expect((await netdState(d2.home)).dhcp.answered).toBe(before2.answered);
  // A renewal is unicast to the server's address: it reaches this daemon even though
  // the other one's wildcard socket is bound to port 67 too.
  const renew = join(scratch, "renew.ts");
  writeFileSync(
    renew,
    `
    import dgram from "node:dgram";
    import { DHCP, buildRequest, parseDhcp, messageType } from ${JSON.stringify(join(REPO, "services/netd/core/dhcp-wire.ts"))};
    const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
    s.on("message", (m) => { const r = parseDhcp(new Uint8Array(m)); if (r?.xid === 4242) { console.log(messageType(r) === DHCP.ACK ? "ACK " + r.yiaddr : "other"); process.exit(0); } });
    s.bind(68, ${JSON.stringify(alpha.ip)}, () => s.send(buildRequest({ xid: 4242, chaddr: ${JSON.stringify(alpha.mac)}, type: DHCP.REQUEST, ciaddr: ${JSON.stringify(alpha.ip)} }), 67, ${JSON.stringify(mine.gateway)}));
    setTimeout(() => { console.log("timeout"); process.exit(1); }, 5000);
  `,
  );
  const r = await alphaNs.exec([process.execPath, renew]);
  expect(r.stdout.trim()).toBe(`ACK ${alpha.ip}`);
  // A MAC nobody leased gets no address from either daemon.
  const stranger = await fakeMachine(mine.bridge, "02:00:5e:10:20:30");
  await expect(udhcpc(stranger, "stranger", 2)).rejects.toThrow(/udhcpc failed/);
  await c2.machineNetworks.detachMachine({ machine: "gamma" });
  expect((await netdState(d2.home)).dhcp.listening).toBeNull();
}, 90_000);

test("after netd is killed and after a daemon restart, everything is re-adopted and nothing duplicated", async () => {
  const before = await c.machineNetworks.listMachineLeases({});
  const pid = await netdPid();
  process.kill(pid, "SIGKILL");
  await waitFor("netd restarted", async () => (await netdPid().catch(() => pid)) !== pid);
  expect(await c.machineNetworks.listMachineLeases({})).toEqual(before);
  // The new netd serves DHCP again.
  expect((await udhcpc(alphaNs, "alpha")).ip).toBe(before.leases[0].ip);
  const bound = await c.machineNetworks.listMachineLeases({});
  // A daemon stop keeps machines' networking (they keep running); someone deletes a TAP meanwhile.
  await d.stop();
  expect(await link(before.bridge)).toBeDefined();
  await run(["ip", "link", "del", before.leases[1].tap]);
  await d.start();
  const after = await c.machineNetworks.listMachineLeases({});
  expect(after).toEqual(bound);
  for (const l of after.leases) expect((await link(l.tap))?.master).toBe(after.bridge);
  // alpha's forwarded port answers again (rules rebuilt, host port held again).
  const res = await fetch(`http://127.0.0.1:${forwardedPort}/`);
  expect(await res.text()).toBe("hello from the machine\n");
  expect(() => Bun.listen({ hostname: "0.0.0.0", port: forwardedPort, exclusive: true, socket: { data() {} } })).toThrow();
  const again = await c.machineNetworks.attachMachine({ machine: "alpha" });
  expect(again.ip).toBe(before.leases[0].ip);
  const taps = (await run(["ip", "-br", "link"])).stdout.split("\n").filter((l) => l.startsWith(`${names.ifPrefix}t`));
  expect(taps).toHaveLength(2);
  const rules = (await run(["iptables-save", "-t", "nat"])).stdout.split("\n").filter((l) => l.includes(`-s ${after.subnet} ! -o`));
  expect(rules).toHaveLength(1);
}, 60_000);

test("DetachMachine removes the TAP, the lease and the rules; the last one takes the bridge", async () => {
  const leases = await c.machineNetworks.listMachineLeases({});
  const [alpha, beta] = leases.leases;
  await c.machineNetworks.detachMachine({ machine: "beta" });
  await c.machineNetworks.detachMachine({ machine: "beta" }); // idempotent
  expect(await link(beta.tap)).toBeUndefined();
  expect((await c.machineNetworks.listMachineLeases({})).leases.map((l) => l.machine)).toEqual(["alpha"]);
  // qemu opens the TAP by name as the contract says (paused: no guest needed), and a
  // machine removed while qemu still holds it loses its TAP all the same.
  const qemu = Bun.spawn(
    [
      "qemu-system-x86_64",
      "-M",
      "microvm",
      "-accel",
      "tcg",
      "-nodefaults",
      "-no-user-config",
      "-nographic",
      "-S",
      "-monitor",
      "none",
      "-serial",
      "none",
      "-netdev",
      `tap,id=n0,ifname=${alpha.tap},script=no,downscript=no`,
      "-device",
      `virtio-net-device,netdev=n0,mac=${alpha.mac}`,
    ],
    { stderr: "pipe" },
  );
  procs.push(qemu);
  await waitFor("qemu holding the TAP", async () => (await link(alpha.tap))?.flags.includes("LOWER_UP"));
  expect(qemu.exitCode).toBeNull();
  await c.machineNetworks.detachMachine({ machine: "alpha" });
  expect(await link(alpha.tap)).toBeUndefined();
  qemu.kill("SIGKILL");
  expect(await link(leases.bridge)).toBeUndefined();
  const after = await c.machineNetworks.listMachineLeases({});
  expect(after.leases).toEqual([]);
  expect(after.subnet).toBe("");
  // No DHCP socket and no DNS listener without machines.
  expect((await netdState()).dhcp.listening).toBeNull();
  const saved = (await run(["iptables-save"])).stdout;
  expect(saved).not.toContain(leases.subnet);
  // alpha's forwarded port went with it.
  expect(alpha.ports.length).toBe(1);
  expect(saved).not.toContain(`${alpha.ip}:`);
  expect(saved).not.toContain(`${alpha.ip}/32`);
});

test("netd stays up while a machine is attached (its DHCP and DNS are needed) and idles out after the last detach", async () => {
  const d3 = new TestDaemon("arcbox-netd-machines-idle-", { ARCBOX_IDLE_EXIT_SECONDS: "1" });
  cleanups.push(() => d3.dispose());
  await d3.start();
  const c3 = new ServiceClients(arcboxHome(d3.home));
  const netdStatus = async () => /^netd\s+(\w+)/m.exec((await d3.arcbox(["status"])).stdout)?.[1];
  await c3.machineNetworks.attachMachine({ machine: "lonely" });
  const pid = (await c3.health("netd").check({})).pid;
  // Several idle periods pass without a request: it must not go.
  await Bun.sleep(3500);
  expect(await netdStatus()).toBe("ready");
  expect((await c3.health("netd").check({})).pid).toBe(pid);
  await c3.machineNetworks.detachMachine({ machine: "lonely" });
  await waitFor("netd idle after the last machine", async () => (await netdStatus()) === "idle", 20_000);
}, 60_000);
