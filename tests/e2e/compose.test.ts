/**
 * docker-compose (Debian's 1.29, a real docker-py client) against ArcBox: several
 * services with depends_on, a named volume, a user network with service-name DNS and
 * a published port; then `down -v` leaves no container, network, volume, namespace,
 * veth or published-port rule behind.
 */
import { afterAll, beforeAll, expect } from "bun:test";
import { IN_VM, test } from "../helpers/engine-mode.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { startRegistry, type TestRegistry } from "../helpers/registry.ts";
import { pushBusybox } from "../helpers/test-images.ts";
import { isMachineLink, netNames } from "../../services/netd/core/names.ts";
import { waitFor } from "../helpers/wait.ts";

let d: TestDaemon;
let reg: TestRegistry;
let image: string;
const dir = mkdtempSync(join(tmpdir(), "arcbox-compose-"));
const file = join(dir, "docker-compose.yml");

beforeAll(async () => {
  reg = await startRegistry();
  image = (await pushBusybox(reg)).reference;
  d = new TestDaemon("arcbox-e2e-compose-");
  await d.start();
  expect((await d.docker(["pull", "-q", image])).code).toBe(0);
  writeFileSync(
    file,
    `version: "3.8"
services:
  db:
    image: ${image}
    command: ["sh", "-c", "echo db-ready > /var/lib/db/status; exec httpd -f -p 5432 -h /var/lib/db"]
    volumes:
      - dbdata:/var/lib/db
    networks: [backend]
  web:
    image: ${image}
    depends_on: [db]
    command: ["sh", "-c", "mkdir -p /www; echo web-ok > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports:
      - "127.0.0.1::8080"
    networks:
      backend:
        aliases: [frontend]
volumes:
  dbdata:
networks:
  backend:
`,
  );
}, 120_000);

afterAll(async () => {
  await compose(["down", "-v", "--timeout", "1"]).catch(() => undefined);
  await d.dispose();
  await reg?.stop();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

function compose(args: string[]) {
  return run(["docker-compose", "-p", "shop", "-f", file, ...args], { env: { DOCKER_HOST: d.dockerHost, COMPOSE_INTERACTIVE_NO_CLI: "1" }, timeoutMs: IN_VM ? 600_000 : 90_000 });
}

test("docker-compose up -d brings the stack up; down -v leaves nothing behind", async () => {
  const up = await compose(["up", "-d"]);
  if (up.code !== 0) throw new Error(`docker-compose up failed: ${up.stderr}`);
  const ps = await compose(["ps"]);
  expect(ps.stdout).toContain("shop_db_1");
  expect(ps.stdout).toContain("shop_web_1");
  expect(ps.stdout).toMatch(/Up/);

  // Service names and aliases resolve on the project network.
  const lookup = await d.docker(["run", "--rm", "--network", "shop_backend", image, "sh", "-c", "nslookup db 127.0.0.11; nslookup frontend 127.0.0.11; ping -c 1 -W 2 db"], { timeoutMs: 30_000 });
  expect(lookup.code).toBe(0);
  expect(lookup.stdout).toContain("Name:\tdb");
  expect(lookup.stdout).toContain("Name:\tfrontend");
  expect(lookup.stdout).toContain("1 packets received");

  // The published port answers on the host.
  const port = await compose(["port", "web", "8080"]);
  const hostPort = /127\.0\.0\.1:(\d+)/.exec(port.stdout)?.[1];
  expect(hostPort).toBeDefined();
  let body = "";
  await waitFor("web's published port", async () => {
    body = await fetch(`http://127.0.0.1:${hostPort}/index.html`).then(
      (r) => (r.ok ? r.text() : ""),
      () => "",
    );
    return body !== "";
  });
  expect(body).toBe("web-ok\n");

  // After a restart the service keeps its name, alias and published port.
  const restart = await compose(["restart", "-t", "1"]);
  expect(restart.code).toBe(0);
  const again = await d.docker(["run", "--rm", "--network", "shop_backend", image, "sh", "-c", "nslookup db 127.0.0.11; nslookup frontend 127.0.0.11"], { timeoutMs: 30_000 });
  expect(again.stdout).toContain("Name:\tdb");
  expect(again.stdout).toContain("Name:\tfrontend");
  const port2 = /127\.0\.0\.1:(\d+)/.exec((await compose(["port", "web", "8080"])).stdout)?.[1];
  await waitFor(
    "web's published port after restart",
    async () =>
      (await fetch(`http://127.0.0.1:${port2}/index.html`).then(
        (r) => (r.ok ? r.text() : ""),
        () => "",
      )) === "web-ok\n",
  );

  // The named volume holds db's data.
  const [vol] = JSON.parse((await d.docker(["volume", "inspect", "shop_dbdata"])).stdout);
  // In VM mode its Mountpoint is the engine machine's path (the data is on its disk).
  const status = IN_VM
    ? (await d.arcbox(["machine", "exec", "arcbox-engine", "--", "/opt/arcbox/bin/busybox", "cat", join(vol.Mountpoint, "status")])).stdout
    : await Bun.file(join(vol.Mountpoint, "status")).text();
  expect(status).toBe("db-ready\n");

  const down = await compose(["down", "-v", "--timeout", "1"]);
  expect(down.code).toBe(0);
  expect((await d.docker(["ps", "-aq"])).stdout).toBe("");
  expect((await d.docker(["network", "ls", "--format", "{{.Name}}"])).stdout.split("\n").filter(Boolean).sort()).toEqual(["bridge", "host", "none"]);
  expect((await d.docker(["volume", "ls", "-q"])).stdout).toBe("");
  const names = netNames(d.home);
  await waitFor("namespaces to go", async () => !(await run(["ip", "netns"])).stdout.includes(names.netnsPrefix));
  const links = (await run(["ip", "-br", "link"])).stdout
    .split("\n")
    .filter((l) => l.startsWith(names.ifPrefix))
    .map((l) => l.split(/\s+/)[0]);
  // In VM mode the container bridges are in the engine machine: the host keeps only the
  // machine bridge and the engine's TAP, never a container network's bridge.
  expect(IN_VM ? links.filter((l) => !isMachineLink(names, l)) : links).toEqual(IN_VM ? [] : [names.defaultBridge]);
  // This daemon's DNAT chain holds no published port any more (other daemons' chains are theirs).
  const dnatRules = (await run(["iptables-save", "-t", "nat"])).stdout.split("\n").filter((l) => l.startsWith(`-A ${names.chains.dnat} `));
  // (The machine bridge's own host-alias rule, VM mode's host.arcbox.internal, stays.)
  expect(dnatRules.filter((l) => l.includes("--to-destination") && !l.includes(`-i ${names.machineBridge} `))).toEqual([]);
}, 120_000);
