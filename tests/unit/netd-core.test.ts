/** netd's pure logic: IPAM, DNS wire format, /etc files and firewall rules. */
import { expect, test } from "bun:test";
import { allocateIp, macForIp, pickSubnet, validatePools } from "../../services/netd/core/ipam.ts";
import { parseCidr } from "../../services/netd/core/ipv4.ts";
import { buildAnswer, parseQuery, TYPE_A } from "../../services/netd/core/dns-wire.ts";
import { hostsFile, parseExtraHosts, parseResolvConf } from "../../services/netd/core/etc-files.ts";
import { engineFirewallRules, firewallRules } from "../../services/netd/core/firewall-rules.ts";
import { netNames } from "../../services/netd/core/names.ts";
import type { NetworkRecord } from "../../services/netd/core/model.ts";

const net = (over: Partial<NetworkRecord> = {}): NetworkRecord => ({
  id: "n".repeat(64),
  name: "front",
  driver: "bridge",
  created: "",
  createdUnix: 0,
  internal: false,
  attachable: false,
  enableIpv6: false,
  ipamDriver: "default",
  ipamOptions: {},
  pools: [{ subnet: "10.5.0.0/24", gateway: "10.5.0.1" }],
  options: {},
  labels: {},
  bridge: "abtestn1",
  builtin: false,
  isDefault: false,
  ...over,
});

test("pickSubnet skips every taken range, including the host's routes", () => {
  expect(pickSubnet([]).subnet).toBe("10.213.0.0/24");
  expect(pickSubnet([parseCidr("10.213.0.0/23")])).toEqual({ subnet: "10.213.2.0/24", gateway: "10.213.2.1" });
  expect(pickSubnet([parseCidr("10.213.0.0/16")]).subnet).toBe("10.214.0.0/24");
});

test("validatePools: overlap, gateway outside the subnet, ranges", () => {
  expect(() => validatePools([{ subnet: "10.5.0.128/25", gateway: "" }], [net()])).toThrow(/overlaps/);
  expect(() => validatePools([{ subnet: "10.6.0.0/24", gateway: "10.7.0.1" }], [])).toThrow(/no matching subnet for gateway/);
  expect(() => validatePools([{ subnet: "10.6.0.0/24", gateway: "", ipRange: "10.6.1.0/25" }], [])).toThrow(/no matching subnet for range/);
  expect(() => validatePools([{ subnet: "banana", gateway: "" }], [])).toThrow(/invalid CIDR/);
  expect(validatePools([{ subnet: "10.6.0.7/24", gateway: "" }], [])).toEqual([{ subnet: "10.6.0.0/24", gateway: "10.6.0.1", implicitGateway: true }]);
});

test("allocateIp: lowest free address, range, static, conflicts", () => {
  expect(allocateIp(net(), new Set()).ip).toBe("10.5.0.2");
  expect(allocateIp(net(), new Set(["10.5.0.2"])).ip).toBe("10.5.0.3");
  const ranged = net({ pools: [{ subnet: "10.5.0.0/24", gateway: "10.5.0.1", ipRange: "10.5.0.128/25" }] });
  expect(allocateIp(ranged, new Set()).ip).toBe("10.5.0.128");
  expect(allocateIp(net(), new Set(), "10.5.0.9")).toEqual({ ip: "10.5.0.9", prefixLen: 24, gateway: "10.5.0.1" });
  expect(() => allocateIp(net(), new Set(["10.5.0.9"]), "10.5.0.9")).toThrow(/already/);
  expect(() => allocateIp(net(), new Set(), "10.9.0.9")).toThrow(/no configured subnet/);
  expect(() => allocateIp(net(), new Set(), "10.5.0.1")).toThrow(/already/);
  const tiny = net({ pools: [{ subnet: "10.5.0.0/30", gateway: "10.5.0.1" }] });
  expect(() => allocateIp(tiny, new Set(["10.5.0.2"]))).toThrow(/no available/);
  expect(macForIp("10.5.0.2")).toBe("02:42:0a:05:00:02");
});

test("DNS wire: parse a query, answer with A records", () => {
  const q = new Uint8Array([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, ...new TextEncoder().encode("Web"), 0, 0, 1, 0, 1]);
  const parsed = parseQuery(q)!;
  expect(parsed).toMatchObject({ id: 0x1234, name: "web", type: TYPE_A, recursionDesired: true });
  const a = buildAnswer(q, parsed, ["10.5.0.2"]);
  const v = new DataView(a.buffer);
  expect(v.getUint16(0)).toBe(0x1234);
  expect(v.getUint16(2) & 0x8000).toBe(0x8000);
  expect(v.getUint16(6)).toBe(1);
  expect([...a.subarray(a.length - 4)]).toEqual([10, 5, 0, 2]);
  expect(parseQuery(new Uint8Array(5))).toBeUndefined();
  expect(parseQuery(a)).toBeUndefined(); // responses are not queries
});

test("/etc files as Docker writes them", () => {
  const extra = parseExtraHosts(["host.docker.internal:host-gateway", "db=10.0.0.9"], "10.5.0.1");
  expect(extra).toEqual([
    { names: ["host.docker.internal"], ip: "10.5.0.1" },
    { names: ["db"], ip: "10.0.0.9" },
  ]);
  const hosts = hostsFile(extra, [{ ip: "10.5.0.2", names: ["abc", "web"] }]);
  expect(hosts.split("\n")[0]).toBe("127.0.0.1\tlocalhost");
  expect(hosts).toContain("10.5.0.1\thost.docker.internal\n");
  expect(hosts).toContain("10.5.0.2\tabc web\n");
  expect(parseResolvConf("# c\nnameserver 127.0.0.53\nnameserver 1.1.1.1\nsearch a b\noptions ndots:2\n")).toEqual({
    nameservers: ["127.0.0.53", "1.1.1.1"],
    search: ["a", "b"],
    options: ["ndots:2"],
  });
});

test("firewall rules: masquerade, isolation, internal networks, published ports", () => {
  const n = netNames("/tmp/unit-home");
  const a = net({ id: "a".repeat(64), bridge: "abA" });
  const b = net({ id: "b".repeat(64), bridge: "abB", internal: true, pools: [{ subnet: "10.6.0.0/24", gateway: "10.6.0.1" }] });
  const rules = firewallRules(n, {
    networks: [a, b],
    endpoints: [{ containerId: "c1", networkId: a.id, endpointId: "e", ip: "10.5.0.2", prefixLen: 24, gateway: "10.5.0.1", mac: "", aliases: [], veth: "v", ifname: "eth0" }],
    attachments: [{ containerId: "c1", kind: "netns", ports: [{ protocol: "tcp", containerPort: 80, hostIp: "127.0.0.1", hostPort: 8080 }] } as any],
  });
  expect(rules.nat).toContain(`-A ${n.chains.nat} -s 10.5.0.0/24 ! -o abA -j MASQUERADE`);
  expect(rules.nat.some((r) => r.includes("10.6.0.0/24"))).toBe(false); // internal: no NAT out
  expect(rules.nat).toContain(`-A ${n.chains.dnat} -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.5.0.2:80`);
  expect(rules.filter).toContain(`-A ${n.chains.forward} -i abA -o abB -j DROP`);
  expect(rules.filter).toContain(`-A ${n.chains.forward} -i abB ! -o abB -j DROP`);
  expect(rules.filter.indexOf(`-A ${n.chains.forward} -i abA -j ACCEPT`)).toBeGreaterThan(rules.filter.indexOf(`-A ${n.chains.forward} -i abA -o abB -j DROP`));
  // The host's loopback is closed to every bridge; each user network's DNS answers its own bridge only.
  for (const br of ["abA", "abB"]) expect(rules.filter).toContain(`-A ${n.chains.input} -d 127.0.0.0/8 -i ${br} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`);
  expect(rules.filter).toContain(`-A ${n.chains.input} -d 10.6.0.1/32 ! -i abB -p udp -m udp --dport 53 -j DROP`);
  expect(rules.filter).toContain(`-A ${n.chains.input} -d 10.6.0.1/32 ! -i abB -p tcp -m tcp --dport 53 -j DROP`);
});

test("VM mode splits the rules: container bridges in the engine machine, published ports DNATed on the host", () => {
  const n = netNames("/tmp/unit-home");
  const a = net({ id: "a".repeat(64), bridge: "abA", isDefault: true });
  const mnet = { bridge: n.machineBridge, subnet: "10.213.9.0/24", gateway: "10.213.9.1", hostAlias: "10.213.9.254" };
  const engine = { machine: "arcbox-engine", mac: "02:00:00:00:00:01", ip: "10.213.9.2", tap: "t", createdUnix: 0, clientHostname: "", expiresUnix: 0, ports: [] };
  const state = {
    networks: [a],
    endpoints: [{ containerId: "c1", networkId: a.id, endpointId: "e", ip: "10.5.0.2", prefixLen: 24, gateway: "10.5.0.1", mac: "", aliases: [], veth: "v", ifname: "eth0" }],
    attachments: [{ containerId: "c1", kind: "netns", ports: [{ protocol: "tcp", containerPort: 80, hostIp: "0.0.0.0", hostPort: 8080 }] } as any],
    machineNet: mnet,
    machines: [engine],
    containersInEngine: true,
  };
  const host = firewallRules(n, state);
  // The host has no container bridge: nothing names abA; the port goes to the container's address via the machine bridge.
  expect([...host.nat, ...host.filter].some((r) => r.includes("abA"))).toBe(false);
  expect(host.nat).toContain(`-A ${n.chains.dnat} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.5.0.2:80`);
  expect(host.filter).toContain(`-A ${n.chains.forward} -d 10.5.0.2/32 ! -i ${mnet.bridge} -o ${mnet.bridge} -p tcp -m tcp --dport 80 -j ACCEPT`);
  expect(host.filter.indexOf(`-A ${n.chains.forward} -d 10.5.0.2/32 ! -i ${mnet.bridge} -o ${mnet.bridge} -p tcp -m tcp --dport 80 -j ACCEPT`)).toBeLessThan(
    host.filter.indexOf(`-A ${n.chains.forward} -o ${mnet.bridge} -j DROP`),
  );
  // The engine machine: outbound NAT and forwarding for its bridge, no DNAT (the host did it).
  const guest = engineFirewallRules(n, state);
  expect(guest.nat).toEqual([
    `-A ${n.chains.nat} -d 10.213.9.1/32 -p tcp -m tcp --dport 53 -j RETURN`,
    `-A ${n.chains.nat} -d 10.213.9.1/32 -p udp -m udp --dport 53 -j RETURN`,
    `-A ${n.chains.nat} -s 10.5.0.0/24 ! -o abA -j MASQUERADE`,
  ]);
  expect(guest.filter).toContain(`-A ${n.chains.forward} -d 10.5.0.2/32 ! -i abA -o abA -p tcp -m tcp --dport 80 -j ACCEPT`);
  expect(guest.filter.at(-1)).toBe(`-A ${n.chains.forward} -o abA -j DROP`);
});

test("firewall rules honour enable_icc=false and enable_ip_masquerade=false", () => {
  const n = netNames("/tmp/unit-home");
  const quiet = net({ bridge: "abQ", options: { "com.docker.network.bridge.enable_icc": "false", "com.docker.network.bridge.enable_ip_masquerade": "false" } });
  const rules = firewallRules(n, { networks: [quiet], endpoints: [], attachments: [] });
  expect(rules.filter).toContain(`-A ${n.chains.forward} -i abQ -o abQ -j DROP`);
  expect(rules.nat.some((r) => r.includes("-s 10.5.0.0/24"))).toBe(false);
});

test("firewall rules for machines: NAT, isolation, forwards before the host alias, DNS guard, machine-only DNS", () => {
  const n = netNames("/tmp/unit-home");
  const a = net({ id: "a".repeat(64), bridge: "abA" });
  const mnet = { bridge: n.machineBridge, subnet: "10.213.9.0/24", gateway: "10.213.9.1", hostAlias: "10.213.9.254" };
  const m = {
    machine: "alpha",
    mac: "02:00:00:00:00:01",
    ip: "10.213.9.2",
    tap: "t",
    createdUnix: 0,
    clientHostname: "",
    expiresUnix: 0,
    ports: [
      { protocol: "tcp" as const, port: 8080, hostPort: 8080, hostIp: "" },
      { protocol: "udp" as const, port: 53, hostPort: 53, hostIp: "" },
    ],
  };
  const rules = firewallRules(n, {
    networks: [a],
    endpoints: [{ containerId: "c1", networkId: a.id, endpointId: "e", ip: "10.5.0.2", prefixLen: 24, gateway: "10.5.0.1", mac: "", aliases: [], veth: "v", ifname: "eth0" }],
    attachments: [
      {
        containerId: "c1",
        containerName: "c1",
        hostname: "c1",
        domainname: "",
        kind: "netns",
        sharedWith: "",
        netnsName: "",
        netnsPath: "",
        hostsPath: "",
        resolvConfPath: "",
        hostnamePath: "",
        ports: [{ protocol: "tcp", containerPort: 80, hostIp: "", hostPort: 8081 }],
        extraHosts: [],
        dns: [],
        dnsSearch: [],
        dnsOptions: [],
      },
    ],
    machineNet: mnet,
    machines: [m],
  });
  const br = n.machineBridge;
  const { nat: post, dnat, forward: fwd, input } = n.chains;
  expect(rules.nat).toContain(`-A ${post} -s 10.213.9.0/24 ! -o ${br} -j MASQUERADE`);
  const fwd8080 = rules.nat.indexOf(`-A ${dnat} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.213.9.2:8080`);
  const alias = rules.nat.indexOf(`-A ${dnat} -i ${br} -d 10.213.9.254/32 -j DNAT --to-destination 127.0.0.1`);
  const ctr = rules.nat.findIndex((r) => r.includes("--to-destination 10.5.0.2:80"));
  expect(ctr).toBeGreaterThanOrEqual(0);
  expect(fwd8080).toBeGreaterThan(ctr);
  expect(alias).toBeGreaterThan(fwd8080);
  // Forwarding udp/53 must leave netd's DNS on every gateway alone.
  const guard = rules.nat.indexOf(`-A ${dnat} -d 10.5.0.1/32 -p udp -m udp --dport 53 -j RETURN`);
  expect(guard).toBeGreaterThanOrEqual(0);
  expect(guard).toBeLessThan(rules.nat.findIndex((r) => r.includes("--to-destination 10.213.9.2:53")));
  expect(rules.nat).toContain(`-A ${dnat} -d 10.213.9.1/32 -p udp -m udp --dport 53 -j RETURN`);
  expect(rules.nat.some((r) => r.includes("tcp --dport 53 -j RETURN"))).toBe(false);
  // Machines and containers are isolated; the machine bridge's drop-all comes after its accepts.
  expect(rules.filter).toContain(`-A ${fwd} -i ${br} -o abA -j DROP`);
  expect(rules.filter).toContain(`-A ${fwd} -i abA -o ${br} -j DROP`);
  expect(rules.filter.indexOf(`-A ${fwd} -i abA -o ${br} -j DROP`)).toBeLessThan(rules.filter.indexOf(`-A ${fwd} -i abA -j ACCEPT`));
  expect(rules.filter.indexOf(`-A ${fwd} -d 10.213.9.2/32 -o ${br} -p tcp -m tcp --dport 8080 -j ACCEPT`)).toBeLessThan(rules.filter.indexOf(`-A ${fwd} -i abA -o ${br} -j DROP`));
  expect(rules.filter.indexOf(`-A ${fwd} -o ${br} -j DROP`)).toBeGreaterThan(rules.filter.indexOf(`-A ${fwd} -i ${br} -j ACCEPT`));
  expect(rules.filter).toContain(`-A ${input} -d 10.213.9.1/32 ! -i ${br} -p udp -m udp --dport 53 -j DROP`);
  expect(rules.filter).toContain(`-A ${input} -d 127.0.0.0/8 -i ${br} -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`);
  // No machine bridge, no machine rules.
  const none = firewallRules(n, { networks: [a], endpoints: [], attachments: [] });
  expect([...none.nat, ...none.filter].some((r) => r.includes(br))).toBe(false);
});
