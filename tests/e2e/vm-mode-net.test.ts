/**
 * VM mode's networking (issue 13), through the real docker CLI: the engine machine's NIC
 * (netd's machine bridge), containers on the default bridge inside the machine (netd's
 * IPAM, the datapath run by the machine's serial relay), outbound NAT, published ports from the
 * host's 127.0.0.1 and address, and host.docker.internal. One daemon and one engine
 * machine boot for the file (TCG: a boot takes a minute or more on a loaded host).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import type { Socket, TCPSocketListener } from "bun";
import { unixClient } from "../../lib/rpc/client.ts";
import { MachineService } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import { TestDaemon } from "../helpers/daemon.ts";

const IMAGE = "vmnet-busybox:1";
const LONG = { timeoutMs: 300_000 };
let d: TestDaemon;
/** A TCP server on the host (all addresses): answers each connection with the peer's address. */
let server: TCPSocketListener<undefined>;

async function ok(args: string[]): Promise<string> {
  const r = await d.docker(args, LONG);
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

async function engine(): Promise<{ IP: string }> {
  const r = await d.arcbox(["machine", "inspect", "arcbox-engine"]);
  return JSON.parse(r.stdout) as { IP: string };
}

/** The machine bridge's gateway (the host's own address facing the engine machine). */
function machineGateway(engineIp: string): string {
  return engineIp.replace(/\.\d+$/, ".1");
}

/** GET / from the host through the published port, retried while the server in the container starts. */
async function fetchText(url: string): Promise<string> {
  let last = "";
  for (let i = 0; i < 60; i++) {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      return await r.text();
    } catch (err) {
      last = String(err);
    }
    await Bun.sleep(1000);
  }
  throw new Error(`${url}: ${last}`);
}

beforeAll(async () => {
  server = Bun.listen({
    hostname: "0.0.0.0",
    port: 0,
    socket: {
      open(s: Socket<undefined>) {
        s.end(`peer ${s.remoteAddress}\n`);
      },
      data() {},
    },
  });
  d = new TestDaemon("arcbox-vm-net-", {}, undefined, { engine: "vm" });
  await d.start();
  await d.importBusybox(IMAGE);
  // The first run waits for the engine machine's boot.
  const r = await d.docker(["run", "--rm", IMAGE, "true"], { timeoutMs: 540_000 });
  if (r.code !== 0) throw new Error(`first docker run failed (${r.code}): ${r.stderr}`);
}, 600_000);

afterAll(async () => {
  server?.stop(true);
  await d?.dispose();
}, 180_000);

describe("VM mode: networking", () => {
  test("the engine machine has netd's NIC and reaches the host as host.arcbox.internal", async () => {
    const { IP } = await engine();
    expect(IP).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const r = await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "sh", "-c", `ip -4 -o addr show eth0; nc host.arcbox.internal ${server.port} </dev/null`], LONG);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`inet ${IP}/`);
    expect(r.stdout).toContain(`peer ${IP}`);
  }, 300_000);

  test("the machine's relay runs netd's datapath tools only, and reports each one's output and exit code", async () => {
    const vmm = unixClient(MachineService, join(d.home, "run", "vmm.sock"));
    const enc = new TextEncoder();
    const run = (argv: string[], stdin = "", mayFail = false) => ({ argv, stdin: enc.encode(stdin), mayFail });
    // Anything but ip, iptables-restore/-save, sysctl and nsenter is refused before any runs.
    const marker = `/tmp/netcmd-refused-${process.pid}`;
    const refused = vmm.networkCommands({ machine: "arcbox-engine", commands: [run(["ip", "-V"]), run(["busybox", "touch", marker])] });
    await expect(refused).rejects.toThrow(/network command "busybox" is not one the engine machine runs/);
    const seen = await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "ls", marker], LONG);
    expect(seen.code).not.toBe(0);
    // In order, stdin fed, stopping at the first failure that may not fail.
    const r = await vmm.networkCommands({
      machine: "arcbox-engine",
      commands: [run(["ip", "-batch", "-"], "link show lo\n"), run(["ip", "link", "show", "no-such-link"], "", true), run(["ip", "link", "del", "no-such-link"]), run(["ip", "-V"])],
    });
    expect(r.results.map((x) => x.code)).toEqual([0, 1, 1]);
    expect(r.results[0]!.stdout).toContain("lo:");
    expect(r.results[1]!.stderr).toContain("no-such-link");
  }, 300_000);

  test("a container on the default bridge: address from netd, default route, outbound NAT as the machine's address", async () => {
    const { IP } = await engine();
    const gw = machineGateway(IP);
    const out = await ok(["run", "--rm", IMAGE, "sh", "-c", `ip -4 -o addr show eth0; ip route; cat /etc/resolv.conf; nc ${gw} ${server.port} </dev/null`]);
    const addr = /inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(out);
    expect(addr).not.toBeNull();
    expect(out).toMatch(/^default via \d+\.\d+\.\d+\.1 dev eth0/m);
    expect(out).toContain("nameserver ");
    // The host sees the engine machine's address, not the container's (MASQUERADE in the machine).
    expect(out).toContain(`peer ${IP}\n`);
    expect(addr![1]).not.toBe(IP);
  }, 300_000);

  test("host.docker.internal (host-gateway) reaches a server on the host", async () => {
    const out = await ok([
      "run",
      "--rm",
      "--add-host",
      "host.docker.internal:host-gateway",
      IMAGE,
      "sh",
      "-c",
      `grep host.docker.internal /etc/hosts; nc host.docker.internal ${server.port} </dev/null`,
    ]);
    expect(out).toMatch(/^\d+\.\d+\.\d+\.\d+\thost\.docker\.internal$/m);
    expect(out).toMatch(/^peer \d+\.\d+\.\d+\.\d+$/m);
  }, 300_000);

  test("-p and -P publish on the host's 127.0.0.1 and its address; docker port and inspect show them", async () => {
    const hostPort = 20000 + Math.floor(Math.random() * 20000);
    await ok([
      "run",
      "-d",
      "--name",
      "web",
      "-p",
      `${hostPort}:80`,
      "-p",
      "8081",
      "--expose",
      "9090",
      "-P",
      IMAGE,
      "sh",
      "-c",
      "mkdir -p /www && echo hello-from-the-engine > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    try {
      expect(await fetchText(`http://127.0.0.1:${hostPort}/index.html`)).toBe("hello-from-the-engine\n");
      const lan = Object.values(networkInterfaces())
        .flat()
        .find((a) => a && a.family === "IPv4" && !a.internal && !a.address.startsWith("10.213."))?.address;
      if (lan) expect(await fetchText(`http://${lan}:${hostPort}/index.html`)).toBe("hello-from-the-engine\n");
      const port = await ok(["port", "web"]);
      expect(port).toContain(`80/tcp -> 0.0.0.0:${hostPort}`);
      expect(port).toMatch(/^8081\/tcp -> 0\.0\.0\.0:\d+$/m);
      expect(port).toMatch(/^9090\/tcp -> 0\.0\.0\.0:\d+$/m);
      const [info] = JSON.parse(await ok(["inspect", "web"])) as { NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[]>; IPAddress: string } }[];
      expect(info!.NetworkSettings.Ports["80/tcp"]).toEqual([{ HostIp: "0.0.0.0", HostPort: String(hostPort) }]);
      // Another container on the default bridge reaches it by address.
      const peer = await ok(["run", "--rm", IMAGE, "sh", "-c", `printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc ${info!.NetworkSettings.IPAddress} 80`]);
      expect(peer).toContain("hello-from-the-engine");
    } finally {
      await d.docker(["rm", "-f", "web"], LONG);
    }
    // The port is free again once the container is gone.
    const after = await fetch(`http://127.0.0.1:${hostPort}/`, { signal: AbortSignal.timeout(5000) }).then(
      () => "answered",
      () => "refused",
    );
    expect(after).toBe("refused");
  }, 600_000);

  test("user-defined networks: container names through the embedded DNS, isolated from the default bridge", async () => {
    await ok(["network", "create", "--ipv6", "--subnet", "fd00:ab13::/64", "vmnet-user"]);
    try {
      await ok([
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "vmnet-user",
        "--network-alias",
        "api",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo hi-from-srv > /www/index.html && exec httpd -f -p 80 -h /www",
      ]);
      const [info] = JSON.parse(await ok(["inspect", "srv"])) as { NetworkSettings: { Networks: Record<string, { IPAddress: string }> } }[];
      const ip = info!.NetworkSettings.Networks["vmnet-user"]!.IPAddress;
      const out = await ok([
        "run",
        "--rm",
        "--network",
        "vmnet-user",
        IMAGE,
        "sh",
        "-c",
        "cat /etc/resolv.conf; nslookup api 127.0.0.11; ping -6 -c 1 -W 5 srv; for i in $(seq 30); do printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc srv 80 | grep hi && break; sleep 1; done",
      ]);
      expect(out).toContain("nameserver 127.0.0.11");
      expect(out).toContain(`Address: ${ip}`);
      expect(out).toContain("hi-from-srv");
      // IPv6 on the network's bridge in the machine: an address, and the neighbour answers.
      expect(out).toContain("1 packets received");
      // Networks are isolated from each other in the machine, as on the host.
      const other = await d.docker(["run", "--rm", IMAGE, "sh", "-c", `printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 ${ip} 80; echo "nc=$?"`], LONG);
      expect(other.stdout).not.toContain("hi-from-srv");
      expect(other.stdout).toContain("nc=1");
    } finally {
      await d.docker(["rm", "-f", "srv"], LONG);
    }
    await ok(["network", "rm", "vmnet-user"]);
  }, 600_000);
});
