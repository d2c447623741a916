/** The guest's reading of /proc/net/{tcp,udp}{,6} for automatic port forwarding. */
import { describe, expect, test } from "bun:test";
import { listenPorts, parseListeners, parsePortRange } from "../../guest/vm/listen-table.ts";

const HEADER4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const HEADER6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
const row = (local: string, remote: string, st: string) => `   0: ${local} ${remote} ${st} 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0\n`;

const tcp4 =
  HEADER4 +
  row("0100007F:1F92", "00000000:0000", "0A") + // 127.0.0.1:8082 listening
  row("00000000:1F90", "00000000:0000", "0A") + // 0.0.0.0:8080
  row("020FD50A:0016", "00000000:0000", "0A") + // 10.213.15.2:22
  row("0100007F:1F92", "0100007F:9BCC", "06") + // TIME_WAIT: not a listener
  row("0100007F:0035", "00000000:0000", "0A"); // 127.0.0.1:53
const tcp6 =
  HEADER6 +
  row("00000000000000000000000000000000:1F91", "00000000000000000000000000000000:0000", "0A") + // [::]:8081
  row("00000000000000000000000001000000:0050", "00000000000000000000000000000000:0000", "0A") + // [::1]:80
  row("0000000000000000FFFF00000100007F:0035", "00000000000000000000000000000000:0000", "0A") + // ::ffff:127.0.0.1:53
  row("0000000000000000FFFF0000020FD50A:1F91", "0000000000000000FFFF0000010FD50A:85C0", "01"); // established

describe("listen table", () => {
  test("parses LISTEN rows of both families with their addresses", () => {
    expect(parseListeners(tcp4, false)).toEqual([
      { protocol: "tcp", address: "127.0.0.1", port: 8082, loopback: true },
      { protocol: "tcp", address: "0.0.0.0", port: 8080, loopback: false },
      { protocol: "tcp", address: "10.213.15.2", port: 22, loopback: false },
      { protocol: "tcp", address: "127.0.0.1", port: 53, loopback: true },
    ]);
    expect(parseListeners(tcp6, true)).toEqual([
      { protocol: "tcp", address: "::", port: 8081, loopback: false },
      { protocol: "tcp", address: "::1", port: 80, loopback: true },
      { protocol: "tcp", address: "::ffff:127.0.0.1", port: 53, loopback: true },
    ]);
  });

  test("one entry per port: loopback-only when every listener is, with where to reach it", () => {
    const all = [...parseListeners(tcp4, false), ...parseListeners(tcp6, true)];
    expect(listenPorts(all)).toEqual([
      { protocol: "tcp", port: 22, loopbackOnly: false },
      { protocol: "tcp", port: 53, loopbackOnly: true, loopbackTarget: "127.0.0.1" },
      { protocol: "tcp", port: 80, loopbackOnly: true, loopbackTarget: "::1" },
      { protocol: "tcp", port: 8080, loopbackOnly: false },
      { protocol: "tcp", port: 8081, loopbackOnly: false },
      { protocol: "tcp", port: 8082, loopbackOnly: true, loopbackTarget: "127.0.0.1" },
    ]);
  });

  test("the agent's own proxy listeners do not count", () => {
    const proxied = [...parseListeners(tcp4, false), { protocol: "tcp" as const, address: "10.213.15.2", port: 8082, loopback: false }];
    const ports = listenPorts(proxied, (l) => l.address === "10.213.15.2" && l.port === 8082);
    expect(ports.find((p) => p.port === 8082)).toEqual({ protocol: "tcp", port: 8082, loopbackOnly: true, loopbackTarget: "127.0.0.1" });
    expect(listenPorts(proxied).find((p) => p.port === 8082)).toEqual({ protocol: "tcp", port: 8082, loopbackOnly: false });
  });
});

describe("udp", () => {
  const udp4 =
    HEADER4 +
    row("00000000:14E9", "00000000:0000", "07") + // 0.0.0.0:5353: a server
    row("00000000:0044", "00000000:0000", "07") + // 0.0.0.0:68: the DHCP client
    row("0100007F:2328", "00000000:0000", "07") + // 127.0.0.1:9000: loopback only
    row("020FD50A:A1B2", "00000000:0000", "07") + // :41394: ephemeral, unconnected (a lookup)
    row("020FD50A:1F40", "010FD50A:0035", "01"); // connected: a client
  const udp6 = HEADER6 + row("00000000000000000000000000000000:0035", "00000000000000000000000000000000:0000", "07"); // [::]:53

  test("bound, unconnected, non-ephemeral sockets are servers; DHCP's and clients' are not", () => {
    const range = parsePortRange("32768\t60999\n");
    expect(range).toEqual([32768, 60999]);
    const l = [...parseListeners(udp4, false, "udp", range), ...parseListeners(udp6, true, "udp", range)];
    expect(l).toEqual([
      { protocol: "udp", address: "0.0.0.0", port: 5353, loopback: false },
      { protocol: "udp", address: "127.0.0.1", port: 9000, loopback: true },
      { protocol: "udp", address: "::", port: 53, loopback: false },
    ]);
    // The same port in TCP and UDP: two entries, TCP first.
    expect(listenPorts([...l, { protocol: "tcp", address: "0.0.0.0", port: 53, loopback: false }])).toEqual([
      { protocol: "tcp", port: 53, loopbackOnly: false },
      { protocol: "udp", port: 53, loopbackOnly: false },
      { protocol: "udp", port: 5353, loopbackOnly: false },
      { protocol: "udp", port: 9000, loopbackOnly: true, loopbackTarget: "127.0.0.1" },
    ]);
  });
});
