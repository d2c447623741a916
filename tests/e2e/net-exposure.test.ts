/**
 * What ArcBox networking exposes on the host, probed as an attacker would:
 *   - a container with default capabilities hand-crafts packets for 127.0.0.1 and sends
 *     them to the gateway's MAC (NET_RAW is enough; the bridge has route_localnet=1 for
 *     published ports on 127.0.0.1): host services bound to loopback must not see them,
 *     while the same probe to the gateway address is answered (so the probe works) and
 *     `-p 127.0.0.1:P:80` still answers from the host;
 *   - the embedded DNS on a user network's gateway answers that network's containers
 *     only: not host users, not containers of another network.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBusyboxDaemon, type BusyboxDaemon } from "../helpers/busybox-daemon.ts";
import { REPO, run } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";

let f: BusyboxDaemon;
let probeDir: string;

beforeAll(async () => {
  probeDir = mkdtempSync(join(tmpdir(), "arcbox-probe-"));
  const cc = await run(["cc", "-static", "-O2", "-o", join(probeDir, "raw-probe"), join(REPO, "tests", "helpers", "raw-probe.c")]);
  if (cc.code !== 0) throw new Error(`building raw-probe failed: ${cc.stderr}`);
  f = await startBusyboxDaemon("arcbox-e2e-netexp-");
}, 120_000);

afterAll(async () => {
  await f?.dispose();
  rmSync(probeDir, { recursive: true, force: true });
}, 120_000);

async function ok(args: string[], timeoutMs = 30_000): Promise<string> {
  const r = await f.d.docker(args, { timeoutMs });
  if (r.code !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** A host TCP + UDP service on `hostname` that counts what reaches it (UDP echoes). */
async function hostService(hostname: string) {
  const seen = { tcp: 0, udp: 0 };
  const tcp = Bun.listen({ hostname, port: 0, socket: { open: () => void seen.tcp++, data: () => undefined } });
  const udp = await Bun.udpSocket({
    hostname,
    socket: {
      data: (s, buf, port, addr) => {
        seen.udp++;
        s.send(buf, port, addr);
      },
      // The prober has no socket for the echo: its ICMP port-unreachable is expected.
      error: () => undefined,
    },
  });
  return { seen, tcpPort: tcp.port, udpPort: udp.port, stop: () => (tcp.stop(true), udp.close()) };
}

async function gatewayOf(network: string): Promise<string> {
  return JSON.parse(await ok(["network", "inspect", network]))[0].IPAM.Config[0].Gateway;
}

test("a container with default capabilities cannot reach host services bound to 127.0.0.1", async () => {
  const gateway = await gatewayOf("bridge");
  const loop = await hostService("127.0.0.1");
  const control = await hostService(gateway);
  try {
    const probe = (ip: string, port: number, proto: string) => `echo ${proto} ${ip} $(/probe/raw-probe eth0 $mac ${ip} ${port} ${proto})`;
    // The gateway's MAC, as the attacker learns it: from ARP.
    const learnMac = `ping -c 1 -W 2 ${gateway} >/dev/null; mac=$(awk '$1 == "${gateway}" {print $4}' /proc/net/arp)`;
    const out = await ok([
      "run",
      "--rm",
      "-v",
      `${probeDir}:/probe:ro`,
      f.image,
      "sh",
      "-c",
      [learnMac, probe(gateway, control.tcpPort, "tcp"), probe(gateway, control.udpPort, "udp"), probe("127.0.0.1", loop.tcpPort, "tcp"), probe("127.0.0.1", loop.udpPort, "udp")].join("; "),
    ]);
    expect(out.trim().split("\n")).toEqual([
      // The crafted packets work: a service on the gateway address answers them (SYN-ACK, echo)...
      `tcp ${gateway} reply tcp flags=0x12`,
      `udp ${gateway} reply udp 5`,
      // ...but the same packets for 127.0.0.1 reach nothing on the host.
      "tcp 127.0.0.1 none",
      "udp 127.0.0.1 none",
    ]);
    expect(control.seen.udp).toBe(1);
    expect(loop.seen).toEqual({ tcp: 0, udp: 0 });
  } finally {
    loop.stop();
    control.stop();
  }
}, 60_000);

test("nor can a container reach a neighbour container's loopback-only services", async () => {
  // On a user network the container's namespace DNATs 127.0.0.11 (route_localnet is on there too).
  await ok(["network", "create", "localnet"]);
  try {
    await ok(["run", "-d", "--name", "victim", "--network", "localnet", f.image, "sh", "-c", "httpd -p 127.0.0.1:8080 -h /tmp; exec httpd -f -p 8081 -h /tmp"]);
    const [victim] = Object.values(JSON.parse(await ok(["network", "inspect", "localnet"]))[0].Containers) as { IPv4Address: string }[];
    const ip = victim.IPv4Address.split("/")[0];
    const out = await ok([
      "run",
      "--rm",
      "--network",
      "localnet",
      "-v",
      `${probeDir}:/probe:ro`,
      f.image,
      "sh",
      "-c",
      `ping -c 1 -W 2 ${ip} >/dev/null; mac=$(awk '$1 == "${ip}" {print $4}' /proc/net/arp); ` +
        `for i in $(seq 50); do nc ${ip} 8081 </dev/null && break; sleep 0.1; done; ` +
        `echo control $(/probe/raw-probe eth0 $mac ${ip} 8081 tcp); echo loopback $(/probe/raw-probe eth0 $mac 127.0.0.1 8080 tcp)`,
    ]);
    expect(out.trim().split("\n").slice(-2)).toEqual(["control reply tcp flags=0x12", "loopback none"]);
  } finally {
    await f.d.docker(["rm", "-f", "victim"]);
    await f.d.docker(["network", "rm", "localnet"]);
  }
}, 60_000);

test("a port published on 127.0.0.1 still answers from the host (kernel DNAT)", async () => {
  await ok(["run", "-d", "--name", "lo-web", "-p", "127.0.0.1::80", f.image, "sh", "-c", "echo loopback-ok > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]);
  try {
    const port = /127\.0\.0\.1:(\d+)/.exec(await ok(["port", "lo-web", "80"]))![1];
    let body = "";
    await waitFor("the published port", async () => {
      body = await fetch(`http://127.0.0.1:${port}/index.html`).then(
        (r) => (r.ok ? r.text() : ""),
        () => "",
      );
      return body !== "";
    });
    expect(body).toBe("loopback-ok\n");
  } finally {
    await ok(["rm", "-f", "lo-web"]);
  }
}, 60_000);

/** One A query for `name` to ip:53 over UDP from the host; undefined when nothing answers in 1.5 s. */
async function hostDnsQuery(ip: string, name: string): Promise<Uint8Array | undefined> {
  const q = new Uint8Array([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, ...name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]), 0, 0, 1, 0, 1]);
  const { promise, resolve } = Promise.withResolvers<Uint8Array | undefined>();
  const sock = await Bun.udpSocket({ binaryType: "uint8array", socket: { data: (_s, buf) => resolve(buf) } });
  const timer = setTimeout(() => resolve(undefined), 1500);
  sock.send(q, 53, ip);
  try {
    return await promise;
  } finally {
    clearTimeout(timer);
    sock.close();
  }
}

async function hostTcpConnects(ip: string, port: number): Promise<boolean> {
  const attempt = Bun.connect({ hostname: ip, port, socket: { data: () => undefined } }).then(
    (s) => (s.end(), true),
    () => false,
  );
  return Promise.race([attempt, Bun.sleep(1500).then(() => false)]);
}

test("the embedded DNS answers its own network's containers only, not the host or other networks", async () => {
  await ok(["network", "create", "dnsnet"]);
  await ok(["network", "create", "othernet"]);
  try {
    await ok(["run", "-d", "--name", "named", "--network", "dnsnet", f.image, "sleep", "300"]);
    const gateway = await gatewayOf("dnsnet");
    const [named] = Object.values(JSON.parse(await ok(["network", "inspect", "dnsnet"]))[0].Containers) as { IPv4Address: string }[];
    const ip = named.IPv4Address.split("/")[0];
    // Its own containers resolve names, through 127.0.0.11 and on the gateway itself.
    const inside = await ok(["run", "--rm", "--network", "dnsnet", f.image, "sh", "-c", `nslookup named; nslookup named ${gateway}`]);
    expect(inside.split(`Address: ${ip}`).length - 1).toBe(2);
    // The host's users get nothing: no UDP answer, no TCP connection.
    expect(await hostDnsQuery(gateway, "named")).toBeUndefined();
    expect(await hostTcpConnects(gateway, 53)).toBe(false);
    // Nor does a container of another network asking that gateway directly.
    const other = await f.d.docker(["run", "--rm", "--network", "othernet", f.image, "nslookup", "named", gateway]);
    expect(other.stdout + other.stderr).toContain("timed out");
  } finally {
    await f.d.docker(["rm", "-f", "named"]);
    await f.d.docker(["network", "rm", "dnsnet", "othernet"]);
  }
}, 90_000);
