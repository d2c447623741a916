/** The guest's reading of /proc/net/tcp{,6} for automatic port forwarding. */
import { describe, expect, test } from "bun:test";
import { listenPorts, parseListeners } from "../../guest/vm/listen-table.ts";

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
      { address: "127.0.0.1", port: 8082, loopback: true },
      { address: "0.0.0.0", port: 8080, loopback: false },
      { address: "10.213.15.2", port: 22, loopback: false },
      { address: "127.0.0.1", port: 53, loopback: true },
    ]);
    expect(parseListeners(tcp6, true)).toEqual([
      { address: "::", port: 8081, loopback: false },
      { address: "::1", port: 80, loopback: true },
      { address: "::ffff:127.0.0.1", port: 53, loopback: true },
    ]);
  });

  test("one entry per port: loopback-only when every listener is, with where to reach it", () => {
    const all = [...parseListeners(tcp4, false), ...parseListeners(tcp6, true)];
    expect(listenPorts(all)).toEqual([
      { port: 22, loopbackOnly: false },
      { port: 53, loopbackOnly: true, loopbackTarget: "127.0.0.1" },
      { port: 80, loopbackOnly: true, loopbackTarget: "::1" },
      { port: 8080, loopbackOnly: false },
      { port: 8081, loopbackOnly: false },
      { port: 8082, loopbackOnly: true, loopbackTarget: "127.0.0.1" },
    ]);
  });

  test("the agent's own proxy listeners do not count", () => {
    const proxied = [...parseListeners(tcp4, false), { address: "10.213.15.2", port: 8082, loopback: false }];
    const ports = listenPorts(proxied, (l) => l.address === "10.213.15.2" && l.port === 8082);
    expect(ports.find((p) => p.port === 8082)).toEqual({ port: 8082, loopbackOnly: true, loopbackTarget: "127.0.0.1" });
    expect(listenPorts(proxied).find((p) => p.port === 8082)).toEqual({ port: 8082, loopbackOnly: false });
  });
});
