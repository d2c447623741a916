/** IPv6 arithmetic, v6 IPAM, AAAA answers and Docker's link variables, without root. */
import { expect, test } from "bun:test";
import { allocateIp6, pickSubnet6, splitPools, validatePools6 } from "../../services/netd/core/ipam.ts";
import { formatIp6, parseCidr6, parseIp6 } from "../../services/netd/core/ipv6.ts";
import { buildAnswer, parseQuery, TYPE_AAAA } from "../../services/netd/core/dns-wire.ts";
import type { NetworkRecord } from "../../services/netd/core/model.ts";
import { linkEnv } from "../../services/apid/core/legacy-links.ts";

const net = (over: Partial<NetworkRecord> = {}): NetworkRecord => ({
  id: "n".repeat(64),
  name: "six",
  driver: "bridge",
  created: "",
  createdUnix: 0,
  internal: false,
  attachable: false,
  enableIpv6: true,
  ipamDriver: "default",
  ipamOptions: {},
  pools: [{ subnet: "10.5.0.0/24", gateway: "10.5.0.1" }],
  pools6: [{ subnet: "fd00:1::/64", gateway: "fd00:1::1" }],
  options: {},
  labels: {},
  bridge: "abtestn1",
  builtin: false,
  isDefault: false,
  ...over,
});

test("IPv6 text: parse and RFC 5952 format", () => {
  const round = (s: string) => formatIp6(parseIp6(s)!);
  expect(round("2001:DB8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1");
  expect(round("fd00:0001:0000::0099")).toBe("fd00:1::99");
  expect(round("::")).toBe("::");
  expect(round("1:0:0:2:0:0:0:3")).toBe("1:0:0:2::3");
  for (const bad of ["zzz", "1::2::3", "1:2:3:4:5:6:7:8:9", "12345::", "10.0.0.1", "fe80::1%eth0"]) expect(parseIp6(bad)).toBeUndefined();
  expect(() => parseCidr6("fd00::/129")).toThrow(/invalid CIDR/);
});

test("v6 pools: split from v4, one per network, no overlap, gateway inside", () => {
  expect(
    splitPools([
      { subnet: "10.1.0.0/24", gateway: "" },
      { subnet: "fd00:2::/64", gateway: "" },
    ]).v6,
  ).toEqual([{ subnet: "fd00:2::/64", gateway: "" }]);
  expect(validatePools6([{ subnet: "fd00:2::5/64", gateway: "" }], [net()])).toEqual([{ subnet: "fd00:2::/64", gateway: "fd00:2::1", implicitGateway: true }]);
  expect(() => validatePools6([{ subnet: "fd00:1::/48", gateway: "" }], [net()])).toThrow(/Pool overlaps/);
  expect(() =>
    validatePools6(
      [
        { subnet: "fd00:3::/64", gateway: "" },
        { subnet: "fd00:4::/64", gateway: "" },
      ],
      [],
    ),
  ).toThrow("bridge driver doesn't support multiple subnets");
  expect(() => validatePools6([{ subnet: "fd00:3::/64", gateway: "fd00:4::1" }], [])).toThrow("failed to allocate gateway (fd00:4::1): Requested address is out of range");
  const auto = pickSubnet6([net()]);
  expect(auto.subnet).toMatch(/^fd[0-9a-f]{2}:/);
  expect(auto.subnet.endsWith("::/64")).toBe(true);
});

test("v6 addresses: lowest free, static, conflicts, outside the subnet", () => {
  expect(allocateIp6(net(), new Set()).ip).toBe("fd00:1::2");
  expect(allocateIp6(net(), new Set(["fd00:1::2"])).ip).toBe("fd00:1::3");
  expect(allocateIp6(net(), new Set(), "fd00:1:0::99")).toEqual({ ip: "fd00:1::99", prefixLen: 64, gateway: "fd00:1::1" });
  expect(() => allocateIp6(net(), new Set(["fd00:1::99"]), "fd00:1::99")).toThrow(/already allocated/);
  expect(() => allocateIp6(net(), new Set(), "fd00:2::5")).toThrow("Invalid address fd00:2::5: It does not belong to any of this network's subnets");
  expect(() => allocateIp6(net(), new Set(), "zzz")).toThrow("invalid IPv6 address: zzz");
});

test("DNS: a known name's AAAA answer carries the 16 address bytes", () => {
  // Query for "b" type AAAA.
  const q = new Uint8Array([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0x62, 0, 0, TYPE_AAAA, 0, 1]);
  const parsed = parseQuery(q)!;
  const ans = buildAnswer(q, parsed, ["fd00:1::99"]);
  const view = new DataView(ans.buffer);
  expect(view.getUint16(6)).toBe(1);
  const off = parsed.questionEnd;
  expect([view.getUint16(off + 2), view.getUint16(off + 10)]).toEqual([TYPE_AAAA, 16]);
  expect([...ans.subarray(off + 12, off + 28)].map((b) => b.toString(16)).join(",")).toBe("fd,0,0,1,0,0,0,0,0,0,0,0,0,0,0,99");
});

test("link variables: Docker's order, consecutive ranges, HOME and PATH left out", () => {
  const env = linkEnv("my-db", "/app/my-db", "10.0.0.2", ["8080/tcp", "8081/tcp", "8082/tcp", "53/udp"], ["PATH=/bin", "HOME=/root", "A=b=c"]);
  expect(env).toEqual([
    "MY_DB_PORT=udp://10.0.0.2:53",
    "MY_DB_PORT_8080_TCP_START=tcp://10.0.0.2:8080",
    "MY_DB_PORT_8080_TCP_ADDR=10.0.0.2",
    "MY_DB_PORT_8080_TCP_PROTO=tcp",
    "MY_DB_PORT_8080_TCP_PORT_START=8080",
    "MY_DB_PORT_8080_TCP_END=tcp://10.0.0.2:8082",
    "MY_DB_PORT_8080_TCP_PORT_END=8082",
    "MY_DB_PORT_53_UDP=udp://10.0.0.2:53",
    "MY_DB_PORT_53_UDP_ADDR=10.0.0.2",
    "MY_DB_PORT_53_UDP_PORT=53",
    "MY_DB_PORT_53_UDP_PROTO=udp",
    ...[8080, 8081, 8082].flatMap((p) => [`MY_DB_PORT_${p}_TCP=tcp://10.0.0.2:${p}`, `MY_DB_PORT_${p}_TCP_ADDR=10.0.0.2`, `MY_DB_PORT_${p}_TCP_PORT=${p}`, `MY_DB_PORT_${p}_TCP_PROTO=tcp`]),
    "MY_DB_NAME=/app/my-db",
    "MY_DB_ENV_A=b=c",
  ]);
});
