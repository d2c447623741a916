/**
 * Machine networking end to end: the real CLI, vmm, netd (TAP, DHCP, DNS, NAT, port
 * forwarding) and real qemu VMs booted from a busybox image imported through the real
 * docker CLI. Two machines, created once and reused: DHCP addresses, names between
 * machines, the host's 127.0.0.1 at host.arcbox.internal, the machine's address from
 * the host, and automatic forwarding of the ports a machine listens on (guest kprobes
 * -> agent -> vmm -> netd), withdrawn when the listener goes and when the machine is
 * removed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { connect, createServer, type Server } from "node:net";
import { TestDaemon } from "../helpers/daemon.ts";
import { waitFor } from "../helpers/wait.ts";

const IMAGE = "machine-busybox:1";
const BOOT_MS = 180_000;
/** How long a listener change may take to reach the host's forwarding (TCG, loaded host). */
const FORWARD_MS = 30_000;
let d: TestDaemon;
const ips: Record<string, string> = {};

const machine = (args: string[]) => d.arcbox(["machine", ...args], { timeoutMs: BOOT_MS });
async function ok(args: string[]): Promise<string> {
  const r = await machine(args);
  if (r.code !== 0) throw new Error(`arcbox machine ${args.join(" ")} (exit ${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}
const sh = (name: string, script: string) => ok(["exec", name, "--", "sh", "-c", script]);
const inspect = async (name: string) => JSON.parse(await ok(["inspect", name])) as Record<string, unknown>;
const iptablesRules = () => Bun.spawnSync(["iptables-save"]).stdout.toString();

/** A port free on the host's 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

/** A UDP port free on the host's 127.0.0.1, below the ephemeral range (where the guest looks for servers). */
async function freeUdpPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const s = createSocket("udp4");
    const free = await new Promise<boolean>((resolve) => {
      s.once("error", () => resolve(false));
      s.bind(port, "127.0.0.1", () => resolve(true));
    });
    s.close();
    if (free) return port;
  }
}

/** GET over the host's 127.0.0.1 (or `host`); undefined when nothing answers. */
async function get(port: number, path = "/", host = "127.0.0.1"): Promise<string | undefined> {
  try {
    const r = await fetch(`http://${host}:${port}${path}`, { signal: AbortSignal.timeout(3_000) });
    return await r.text();
  } catch {
    return undefined;
  }
}

/** The first line a TCP server at host 127.0.0.1:`port` sends; undefined if none within 3 s. */
function firstLine(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: "127.0.0.1", port });
    let buf = "";
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), 3_000);
    s.on("data", (c: Buffer) => {
      buf += c.toString();
      if (buf.includes("\n")) done(buf.slice(0, buf.indexOf("\n")));
    });
    s.on("end", () => done(buf || undefined));
    s.on("error", () => done(undefined));
  });
}

beforeAll(
  async () => {
    d = new TestDaemon("arcbox-machines-net-");
    await d.start();
    await d.importBusybox(IMAGE);
    await ok(["create", "n1", "--image", IMAGE, "--cpus", "1", "--memory", "256", "--disk", "1"]);
    await ok(["create", "n2", "--image", IMAGE, "--cpus", "1", "--memory", "256", "--disk", "1"]);
  },
  BOOT_MS * 2 + 120_000,
);

afterAll(async () => {
  await d?.arcbox(["machine", "rm", "-f", "n1", "n2"]).catch(() => {});
  await d?.dispose();
}, 120_000);

describe("machine network", () => {
  test(
    "each machine has its DHCP address from netd on eth0, as inspect says",
    async () => {
      for (const name of ["n1", "n2"]) {
        const ip = (await inspect(name)).IP as string;
        expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
        // The network comes up after the agent answers: wait for the lease in the guest.
        const addr = await sh(name, "i=0; until ip -4 -o addr show eth0 | grep -q inet; do i=$((i+1)); [ $i -gt 150 ] && exit 1; sleep 0.2; done; ip -4 -o addr show eth0");
        expect(addr).toContain(`inet ${ip}/`);
        ips[name] = ip;
      }
      expect(ips.n1).not.toBe(ips.n2);
    },
    BOOT_MS,
  );

  test(
    "machines resolve each other by name and reach each other",
    async () => {
      expect(await sh("n1", "nslookup n2")).toContain(ips.n2);
      expect(await sh("n2", "nslookup n1.arcbox.local")).toContain(ips.n1);
      expect(await sh("n1", "ping -c 1 -W 5 n2")).toContain(ips.n2);
      // An unknown name fails (it is forwarded upstream, which has no such name).
      expect((await machine(["exec", "n1", "--", "nslookup", "no-such-machine-xyz"])).code).not.toBe(0);
    },
    BOOT_MS,
  );

  test(
    "a service on the host's 127.0.0.1 is reached at host.arcbox.internal",
    async () => {
      const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`hello from the host ${new URL(req.url).pathname}\n`) });
      try {
        // (No -T: busybox 1.35's wget crashes with -T and a name to resolve.)
        const out = await sh("n1", `wget -q -O - http://host.arcbox.internal:${server.port}/from-n1`);
        expect(out).toBe("hello from the host /from-n1\n");
      } finally {
        server.stop(true);
      }
    },
    BOOT_MS,
  );

  test(
    "the machine's own address is reachable from the host",
    async () => {
      const port = await freePort();
      await sh("n2", `mkdir -p /tmp/www && echo n2-direct > /tmp/www/index.html && httpd -p ${port} -h /tmp/www`);
      expect(await waitFor("n2's httpd at its own address", () => get(port, "/index.html", ips.n2!), FORWARD_MS)).toBe("n2-direct\n");
      await sh("n2", "killall httpd");
    },
    BOOT_MS,
  );

  test(
    "a port a machine listens on reaches host 127.0.0.1 by itself, until the listener exits",
    async () => {
      const port = await freePort();
      expect(await get(port)).toBeUndefined();
      // busybox httpd detaches: the exec returns while it listens on every address.
      await sh("n1", `mkdir -p /tmp/www && echo n1-forwarded > /tmp/www/index.html && httpd -p ${port} -h /tmp/www`);
      expect(await waitFor(`host 127.0.0.1:${port} forwarded to n1`, () => get(port, "/index.html"), FORWARD_MS)).toBe("n1-forwarded\n");
      expect((await inspect("n1")).Ports).toContain(`${port}/tcp`);

      // A raw TCP listener too (nc), answering one connection.
      const ncPort = await freePort();
      await sh("n1", `(echo from-nc | nc -l -p ${ncPort} >/dev/null 2>&1 &) ; true`);
      const line = await waitFor(`host 127.0.0.1:${ncPort} forwarded to n1's nc`, () => firstLine(ncPort), FORWARD_MS);
      expect(line).toBe("from-nc");

      // The listener exits: the forwarding goes (nothing answers, the rule is gone).
      await sh("n1", "killall httpd");
      await waitFor(`host 127.0.0.1:${port} no longer forwarded`, async () => (await get(port)) === undefined && !((await inspect("n1")).Ports as string[]).includes(`${port}/tcp`), FORWARD_MS);
      expect(iptablesRules()).not.toMatch(new RegExp(`--dport ${port}\\b`));
    },
    BOOT_MS,
  );

  test(
    "a port only on the machine's loopback is forwarded through the agent",
    async () => {
      const port = await freePort();
      await sh("n1", `mkdir -p /tmp/lo && echo n1-loopback > /tmp/lo/index.html && httpd -p 127.0.0.1:${port} -h /tmp/lo`);
      expect(await waitFor(`host 127.0.0.1:${port} forwarded to n1's loopback`, () => get(port, "/index.html"), FORWARD_MS)).toBe("n1-loopback\n");
      await sh("n1", "killall httpd");
      await waitFor(`host 127.0.0.1:${port} no longer forwarded`, async () => (await get(port)) === undefined, FORWARD_MS);
    },
    BOOT_MS,
  );

  test(
    "a UDP port a machine is bound to is forwarded too",
    async () => {
      const port = await freeUdpPort();
      // busybox has no UDP server applet: a small Bun one from the tools image, bound and
      // unconnected on every address, writing what it receives to a file.
      const server = `const fs = require("fs"); await Bun.udpSocket({ hostname: "0.0.0.0", port: ${port}, socket: { data(s, buf) { fs.appendFileSync("/tmp/udp.out", buf); } } }); setInterval(() => {}, 1e9);`;
      await sh("n1", `(/opt/arcbox/bin/bun -e '${server}' udp-test-server >/dev/null 2>&1 &) ; true`);
      await waitFor(`udp ${port} forwarded`, async () => ((await inspect("n1")).Ports as string[]).includes(`${port}/udp`), FORWARD_MS);
      const sock = createSocket("udp4");
      try {
        sock.send("hello-udp\n", port, "127.0.0.1");
        const got = await waitFor(
          "the datagram in n1",
          async () => (await sh("n1", "cat /tmp/udp.out 2>/dev/null; true")).includes("hello-udp") || (sock.send("hello-udp\n", port, "127.0.0.1"), false),
          FORWARD_MS,
        );
        expect(got).toBe(true);
      } finally {
        sock.close();
      }
      // (busybox has no pkill; the agent is a bun too: pick the server by its argument)
      await sh("n1", "for p in $(pidof bun); do grep -q udp-test-server /proc/$p/cmdline && kill $p; done; true");
      await waitFor(`udp ${port} withdrawn`, async () => !((await inspect("n1")).Ports as string[]).includes(`${port}/udp`), FORWARD_MS);
    },
    BOOT_MS,
  );

  test(
    "a host port already taken is reported, not fatal",
    async () => {
      const taken: Server = createServer((c) => c.end("the host's own\n"));
      await new Promise<void>((resolve) => taken.listen({ host: "127.0.0.1", port: 0 }, resolve));
      const port = (taken.address() as { port: number }).port;
      try {
        await sh("n2", `httpd -p ${port} -h /tmp`);
        const errors = await waitFor(
          `n2's port ${port} reported as not forwarded`,
          async () => {
            const e = (await inspect("n2")).PortErrors as string[];
            return e.length > 0 && e;
          },
          FORWARD_MS,
        );
        expect(errors.join("\n")).toContain(String(port));
        expect((await inspect("n2")).State).toBe("running");
        // The host's own listener still gets its connections.
        expect(await firstLine(port)).toBe("the host's own");
        await sh("n2", "killall httpd");
      } finally {
        taken.close();
      }
    },
    BOOT_MS,
  );

  test(
    "after a daemon restart, vmm asks the adopted machine again (changes made meanwhile count)",
    async () => {
      const port = await freePort();
      // The listener appears while the daemon is down: its event reaches nobody.
      await sh("n1", `mkdir -p /tmp/late && echo n1-late > /tmp/late/index.html && (sleep 15; httpd -p ${port} -h /tmp/late) >/dev/null 2>&1 &`);
      expect((await d.arcbox(["stop"])).code).toBe(0);
      expect(await waitFor("the late listener at n1's own address", () => get(port, "/index.html", ips.n1!), 60_000)).toBe("n1-late\n");
      await d.start();
      // vmm starts for the running machines, re-adopts n1 and asks its agent for the set.
      expect(await waitFor(`host 127.0.0.1:${port} forwarded after the restart`, () => get(port, "/index.html"), 90_000)).toBe("n1-late\n");
      expect((await inspect("n1")).Ports).toContain(`${port}/tcp`);
      // Events flow on the new session.
      await sh("n1", "killall httpd");
      await waitFor(`host 127.0.0.1:${port} no longer forwarded`, async () => (await get(port)) === undefined, FORWARD_MS);
    },
    BOOT_MS,
  );

  test(
    "machine rm leaves no forwarding rule behind",
    async () => {
      const port = await freePort();
      await sh("n2", `mkdir -p /tmp/www && echo n2-forwarded > /tmp/www/index.html && httpd -p ${port} -h /tmp/www`);
      expect(await waitFor(`host 127.0.0.1:${port} forwarded to n2`, () => get(port, "/index.html"), FORWARD_MS)).toBe("n2-forwarded\n");
      expect(iptablesRules()).toContain(ips.n2!);
      expect(await ok(["rm", "-f", "n2"])).toBe("n2\n");
      expect(await get(port)).toBeUndefined();
      const rules = iptablesRules();
      expect(rules).not.toContain(`${ips.n2}:`);
      expect(rules).not.toContain(`${ips.n2}/32`);
      expect(rules).not.toMatch(new RegExp(`--dport ${port}\\b`));
      // The host port is free again.
      const again = createServer();
      await new Promise<void>((resolve, reject) => {
        again.once("error", reject);
        again.listen({ host: "127.0.0.1", port }, resolve);
      });
      again.close();
    },
    BOOT_MS,
  );
});
