/**
 * netd's DHCP server logic (the RFC 2131 subset real clients use: busybox udhcpc,
 * ISC dhclient, systemd-networkd), free of sockets: a request in, a reply and where to
 * send it out. Addresses are reserved per machine by AttachMachine, so the server only
 * confirms a machine's own lease; it answers only MACs this netd leased, so several
 * ArcBox daemons on one host ignore each other's clients.
 */
import { cidrLast, formatIp, maskOf, parseCidr } from "./ipv4.ts";
import { BOOTREQUEST, DHCP, OPT, buildReply, ipOption, messageType, optionIp, optionText, textOption, u32Option, u8Option, type DhcpMessage, type DhcpOption } from "./dhcp-wire.ts";

export interface DhcpNet {
  subnet: string;
  gateway: string;
  dns: string;
  domain: string;
  leaseSeconds: number;
}

export interface DhcpLease {
  machine: string;
  mac: string;
  ip: string;
}

export interface DhcpOutcome {
  /** Reply to send to UDP port 68 of `to`; absent when nothing is sent (RELEASE, DECLINE). */
  reply?: Uint8Array;
  to?: string;
  /** The machine's lease was handed out (ACK) until this Unix time, or released (0). */
  bound?: { machine: string; clientHostname: string; expiresUnix: number };
  /** A line worth logging (NAK reasons, declines). */
  note?: string;
}

export function respond(req: DhcpMessage, net: DhcpNet, leaseOf: (mac: string) => DhcpLease | undefined, nowUnix: number): DhcpOutcome | undefined {
  // Ethernet clients only, no relays (machines sit on our own bridge).
  if (req.op !== BOOTREQUEST || req.htype !== 1 || req.hlen !== 6 || req.giaddr !== "0.0.0.0") return undefined;
  const type = messageType(req);
  const lease = leaseOf(req.chaddr);
  if (!lease || type === undefined) return undefined;
  const serverId = optionIp(req, OPT.SERVER_ID);
  const cidr = parseCidr(net.subnet);
  const broadcast = formatIp(cidrLast(cidr));
  const hostname = optionText(req, OPT.HOSTNAME) ?? "";
  const common: DhcpOption[] = [
    ipOption(OPT.SERVER_ID, net.gateway),
    ipOption(OPT.SUBNET_MASK, formatIp(maskOf(cidr.prefix))),
    ipOption(OPT.ROUTER, net.gateway),
    ipOption(OPT.DNS, net.dns),
    textOption(OPT.DOMAIN_NAME, net.domain),
    ipOption(OPT.BROADCAST, broadcast),
  ];
  const leaseOpts: DhcpOption[] = [
    u32Option(OPT.LEASE_TIME, net.leaseSeconds),
    u32Option(OPT.RENEWAL_TIME, Math.floor(net.leaseSeconds / 2)),
    u32Option(OPT.REBINDING_TIME, Math.floor((net.leaseSeconds * 7) / 8)),
    textOption(OPT.HOSTNAME, lease.machine),
  ];
  // Bound clients (renewing, informing) are unicast; others get the subnet broadcast,
  // which leaves through the machine bridge only and reaches a client without an address.
  const dest = req.ciaddr !== "0.0.0.0" ? req.ciaddr : broadcast;
  const reply = (t: number, yiaddr: string, opts: DhcpOption[]) =>
    buildReply({ request: req, yiaddr, siaddr: t === DHCP.NAK ? "0.0.0.0" : net.gateway, options: [u8Option(OPT.MESSAGE_TYPE, t), ...opts] });
  const nak = (why: string): DhcpOutcome => ({
    reply: reply(DHCP.NAK, "0.0.0.0", [ipOption(OPT.SERVER_ID, net.gateway), textOption(OPT.MESSAGE, why)]),
    to: broadcast,
    note: `NAK for ${lease.machine}: ${why}`,
  });

  switch (type) {
    case DHCP.DISCOVER:
      return { reply: reply(DHCP.OFFER, lease.ip, [...common, ...leaseOpts]), to: broadcast };
    case DHCP.REQUEST: {
      // SELECTING with another server's ID: the client took someone else's offer.
      if (serverId && serverId !== net.gateway) return undefined;
      const wanted = optionIp(req, OPT.REQUESTED_IP) ?? (req.ciaddr !== "0.0.0.0" ? req.ciaddr : undefined);
      if (wanted !== lease.ip) return nak(`address ${wanted ?? "(none)"} is not this machine's; it is ${lease.ip}`);
      return {
        reply: reply(DHCP.ACK, lease.ip, [...common, ...leaseOpts]),
        to: dest,
        bound: { machine: lease.machine, clientHostname: hostname, expiresUnix: nowUnix + net.leaseSeconds },
      };
    }
    case DHCP.INFORM:
      // The client has its address already; configuration only (no lease, no yiaddr).
      return { reply: reply(DHCP.ACK, "0.0.0.0", common), to: req.ciaddr !== "0.0.0.0" ? req.ciaddr : broadcast };
    case DHCP.RELEASE:
      if (serverId && serverId !== net.gateway) return undefined;
      return { bound: { machine: lease.machine, clientHostname: hostname, expiresUnix: 0 } };
    case DHCP.DECLINE:
      return { note: `${lease.machine} declined ${optionIp(req, OPT.REQUESTED_IP) ?? lease.ip}: the address is in use on the machine bridge` };
    default:
      return undefined;
  }
}
