/** netd's DHCP codec and server logic (no sockets): what udhcpc/dhclient send, what they get back. */
import { expect, test } from "bun:test";
import { DHCP, OPT, buildRequest, ipOption, messageType, optionIp, optionText, parseDhcp, textOption, type DhcpMessage } from "../../services/netd/core/dhcp-wire.ts";
import { respond, type DhcpNet } from "../../services/netd/core/dhcp-responder.ts";

const MAC = "02:aa:bb:cc:dd:ee";
const net: DhcpNet = { subnet: "10.213.9.0/24", gateway: "10.213.9.1", dns: "10.213.9.1", domain: "arcbox.local", leaseSeconds: 86400 };
const leases = new Map([[MAC, { machine: "alpha", mac: MAC, ip: "10.213.9.2" }]]);
const leaseOf = (mac: string) => leases.get(mac);
const NOW = 1_700_000_000;

const req = (type: number, extra: Partial<Parameters<typeof buildRequest>[0]> = {}) => parseDhcp(buildRequest({ xid: 0x1234abcd, chaddr: MAC, type, ...extra }))!;
const answer = (m: DhcpMessage) => {
  const out = respond(m, net, leaseOf, NOW);
  return { out, reply: out?.reply ? parseDhcp(out.reply) : undefined };
};
const u32 = (m: DhcpMessage, code: number) => {
  const v = m.options.get(code);
  return v ? new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(0) : undefined;
};

test("a request round-trips through the codec", () => {
  const m = req(DHCP.DISCOVER, { options: [textOption(OPT.HOSTNAME, "alpha"), ipOption(OPT.REQUESTED_IP, "10.213.9.7")] });
  expect(m.op).toBe(1);
  expect(m.xid).toBe(0x1234abcd);
  expect(m.chaddr).toBe(MAC);
  expect(messageType(m)).toBe(DHCP.DISCOVER);
  expect(optionText(m, OPT.HOSTNAME)).toBe("alpha");
  expect(optionIp(m, OPT.REQUESTED_IP)).toBe("10.213.9.7");
});

test("DISCOVER gets an OFFER of the machine's address with every option clients need, broadcast on the subnet", () => {
  const { out, reply } = answer(req(DHCP.DISCOVER));
  expect(out!.to).toBe("10.213.9.255");
  expect(out!.reply!.length).toBeGreaterThanOrEqual(300);
  expect(reply!.op).toBe(2);
  expect(reply!.xid).toBe(0x1234abcd);
  expect(reply!.chaddr).toBe(MAC);
  expect(messageType(reply!)).toBe(DHCP.OFFER);
  expect(reply!.yiaddr).toBe("10.213.9.2");
  expect(optionIp(reply!, OPT.SERVER_ID)).toBe("10.213.9.1");
  expect(optionIp(reply!, OPT.SUBNET_MASK)).toBe("255.255.255.0");
  expect(optionIp(reply!, OPT.ROUTER)).toBe("10.213.9.1");
  expect(optionIp(reply!, OPT.DNS)).toBe("10.213.9.1");
  expect(optionIp(reply!, OPT.BROADCAST)).toBe("10.213.9.255");
  expect(optionText(reply!, OPT.DOMAIN_NAME)).toBe("arcbox.local");
  expect(optionText(reply!, OPT.HOSTNAME)).toBe("alpha");
  expect(u32(reply!, OPT.LEASE_TIME)).toBe(86400);
  expect(u32(reply!, OPT.RENEWAL_TIME)).toBe(43200);
  expect(u32(reply!, OPT.REBINDING_TIME)).toBe(75600);
  expect(out!.bound).toBeUndefined();
});

test("REQUEST for the machine's address is ACKed and binds; another address is NAKed; another server's offer is ignored", () => {
  const ok = answer(req(DHCP.REQUEST, { options: [ipOption(OPT.REQUESTED_IP, "10.213.9.2"), ipOption(OPT.SERVER_ID, "10.213.9.1"), textOption(OPT.HOSTNAME, "guest")] }));
  expect(messageType(ok.reply!)).toBe(DHCP.ACK);
  expect(ok.reply!.yiaddr).toBe("10.213.9.2");
  expect(ok.out!.to).toBe("10.213.9.255");
  expect(ok.out!.bound).toEqual({ machine: "alpha", clientHostname: "guest", expiresUnix: NOW + 86400 });
  const wrong = answer(req(DHCP.REQUEST, { options: [ipOption(OPT.REQUESTED_IP, "10.213.9.50")] }));
  expect(messageType(wrong.reply!)).toBe(DHCP.NAK);
  expect(wrong.reply!.yiaddr).toBe("0.0.0.0");
  expect(wrong.out!.to).toBe("10.213.9.255");
  expect(optionText(wrong.reply!, OPT.MESSAGE)).toContain("10.213.9.2");
  expect(wrong.out!.bound).toBeUndefined();
  expect(answer(req(DHCP.REQUEST, { options: [ipOption(OPT.REQUESTED_IP, "10.213.9.2"), ipOption(OPT.SERVER_ID, "10.9.9.1")] })).out).toBeUndefined();
});

test("a renewing client (ciaddr) is answered by unicast; INFORM gets configuration without a lease", () => {
  const renew = answer(req(DHCP.REQUEST, { ciaddr: "10.213.9.2" }));
  expect(messageType(renew.reply!)).toBe(DHCP.ACK);
  expect(renew.out!.to).toBe("10.213.9.2");
  const inform = answer(req(DHCP.INFORM, { ciaddr: "10.213.9.2" }));
  expect(messageType(inform.reply!)).toBe(DHCP.ACK);
  expect(inform.reply!.yiaddr).toBe("0.0.0.0");
  expect(inform.reply!.ciaddr).toBe("10.213.9.2");
  expect(inform.reply!.options.has(OPT.LEASE_TIME)).toBe(false);
  expect(optionIp(inform.reply!, OPT.DNS)).toBe("10.213.9.1");
  expect(inform.out!.to).toBe("10.213.9.2");
  expect(inform.out!.bound).toBeUndefined();
});

test("RELEASE unbinds without a reply; DECLINE is noted", () => {
  const rel = answer(req(DHCP.RELEASE, { ciaddr: "10.213.9.2", options: [ipOption(OPT.SERVER_ID, "10.213.9.1")] }));
  expect(rel.out!.reply).toBeUndefined();
  expect(rel.out!.bound).toEqual({ machine: "alpha", clientHostname: "", expiresUnix: 0 });
  const dec = answer(req(DHCP.DECLINE, { options: [ipOption(OPT.REQUESTED_IP, "10.213.9.2")] }));
  expect(dec.out!.reply).toBeUndefined();
  expect(dec.out!.note).toContain("declined 10.213.9.2");
});

test("other daemons' clients, relayed and malformed packets get no answer", () => {
  expect(respond(parseDhcp(buildRequest({ xid: 1, chaddr: "02:00:00:00:00:01", type: DHCP.DISCOVER }))!, net, leaseOf, NOW)).toBeUndefined();
  const relayed = req(DHCP.DISCOVER);
  expect(respond({ ...relayed, giaddr: "10.1.1.1" }, net, leaseOf, NOW)).toBeUndefined();
  expect(respond({ ...relayed, op: 2 }, net, leaseOf, NOW)).toBeUndefined();
  const noType = req(DHCP.DISCOVER);
  noType.options.delete(OPT.MESSAGE_TYPE);
  expect(respond(noType, net, leaseOf, NOW)).toBeUndefined();
  const good = buildRequest({ xid: 1, chaddr: MAC, type: DHCP.DISCOVER });
  expect(parseDhcp(good.subarray(0, 200))).toBeUndefined();
  const badCookie = good.slice();
  badCookie[236] = 0;
  expect(parseDhcp(badCookie)).toBeUndefined();
  // An option whose length runs past the end of the packet.
  const truncated = good.slice(0, 240 + 3);
  truncated.set([OPT.HOSTNAME, 40, 65], 240);
  expect(parseDhcp(truncated)).toBeUndefined();
});

test("options in the file field (overload) and split options (RFC 3396) are read", () => {
  const b = buildRequest({ xid: 7, chaddr: MAC, type: DHCP.DISCOVER, options: [[OPT.OVERLOAD, Uint8Array.of(1)], textOption(OPT.HOSTNAME, "ab"), textOption(OPT.HOSTNAME, "cd")] });
  b.set([OPT.REQUESTED_IP, 4, 10, 213, 9, 2, OPT.END], 108);
  const m = parseDhcp(b)!;
  expect(optionIp(m, OPT.REQUESTED_IP)).toBe("10.213.9.2");
  expect(optionText(m, OPT.HOSTNAME)).toBe("abcd");
});
