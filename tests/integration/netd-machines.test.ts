/**
 * netd's machine networking through its Connect API on a real daemon, without a VM:
 * AttachMachine gives a TAP on the machine bridge with a stable MAC and address, is
 * idempotent and survives netd restarts; DetachMachine leaves nothing behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { TestDaemon, run } from "../helpers/daemon.ts";
import { ServiceClients } from "../../lib/service/clients.ts";
import { arcboxHome } from "../../lib/home.ts";
import { netNames, type NetNames } from "../../services/netd/core/names.ts";
import { waitFor } from "../helpers/wait.ts";

let d: TestDaemon;
let c: ServiceClients;
let names: NetNames;

beforeAll(async () => {
  d = new TestDaemon("arcbox-netd-machines-");
  await d.start();
  c = new ServiceClients(arcboxHome(d.home));
  names = netNames(arcboxHome(d.home).root);
}, 60_000);

afterAll(async () => {
  const leases = await c.machineNetworks.listMachineLeases({}).catch(() => undefined);
  for (const l of leases?.leases ?? []) await c.machineNetworks.detachMachine({ machine: l.machine }).catch(() => undefined);
  await d.dispose();
  const check = () => run(["sh", "-c", `ip -br link | grep ${names.ifPrefix}; iptables-save | grep ${names.tag}; true`]);
  let leftovers = await check();
  for (let i = 0; i < 100 && leftovers.stdout !== ""; i++) {
    await Bun.sleep(50);
    leftovers = await check();
  }
  expect(leftovers.stdout).toBe("");
}, 60_000);

const link = async (name: string) => {
  const r = await run(["ip", "-j", "-d", "link", "show", name]);
  return r.code === 0 ? (JSON.parse(r.stdout)[0] as { ifname: string; master?: string; flags: string[]; linkinfo?: { info_kind?: string; info_data?: { type?: string } } }) : undefined;
};
const netdPid = async () => (await c.health("netd").check({})).pid;

test("AttachMachine gives a persistent TAP on the machine bridge, a stable MAC and address; it is idempotent", async () => {
  const a = await c.machineNetworks.attachMachine({ machine: "alpha" });
  expect(a.tap).toMatch(new RegExp(`^${names.ifPrefix}t[0-9a-f]{6}$`));
  expect(a.bridge).toBe(names.machineBridge);
  // Locally administered, unicast.
  expect(a.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  expect(parseInt(a.mac.slice(0, 2), 16) & 0x03).toBe(0x02);
  expect(a.ip).toMatch(/^10\.21[345]\.\d+\.\d+$/);
  expect(a.prefixLen).toBe(24);
  expect(a.dns).toBe(a.gateway);
  expect(a.domain).toBe("arcbox.local");
  expect(a.hostAliasIp).not.toBe(a.gateway);
  const tap = await link(a.tap);
  expect(tap?.master).toBe(a.bridge);
  expect(tap?.linkinfo?.info_kind).toBe("tun");
  expect(tap?.linkinfo?.info_data?.type).toBe("tap");
  const addrs = await run(["ip", "-br", "-4", "addr", "show", a.bridge]);
  expect(addrs.stdout).toContain(`${a.gateway}/24`);
  expect(addrs.stdout).toContain(`${a.hostAliasIp}/32`);
  // Again: same answer, nothing duplicated.
  const again = await c.machineNetworks.attachMachine({ machine: "alpha" });
  expect(again).toEqual(a);
  const b = await c.machineNetworks.attachMachine({ machine: "beta" });
  expect(b.ip).not.toBe(a.ip);
  expect(b.mac).not.toBe(a.mac);
  expect(b.tap).not.toBe(a.tap);
  const leases = await c.machineNetworks.listMachineLeases({});
  expect(leases.leases.map((l) => [l.machine, l.ip, l.mac, l.tap])).toEqual([["alpha", a.ip, a.mac, a.tap], ["beta", b.ip, b.mac, b.tap]]);
  expect(leases.subnet).toBe(`${a.gateway.replace(/\.1$/, ".0")}/24`);
  // The machine subnet is never handed to a network.
  await c.networks.create({ name: "other" });
  const other = (await c.networks.inspect({ network: "other" })).network!;
  expect(other.ipam[0].subnet).not.toBe(leases.subnet);
  await c.networks.remove({ network: "other" });
  // Outbound NAT and forwarding for the machine subnet are in netd's tagged chains.
  const nat = (await run(["iptables-save", "-t", "nat"])).stdout;
  expect(nat).toContain(`-A ${names.chains.nat} -s ${leases.subnet} ! -o ${a.bridge} -j MASQUERADE`);
  expect(nat).toContain(`-A ${names.chains.dnat} -d ${a.hostAliasIp}/32 -i ${a.bridge} -j DNAT --to-destination 127.0.0.1`);
  const filter = (await run(["iptables-save", "-t", "filter"])).stdout;
  expect(filter).toContain(`-A ${names.chains.forward} -i ${a.bridge} -j ACCEPT`);
});

test("bad machine names are refused and build nothing", async () => {
  for (const bad of ["", "-x", "a b", "x\nlink del lo", "a".repeat(64)]) {
    await expect(c.machineNetworks.attachMachine({ machine: bad })).rejects.toThrow(/invalid machine name/);
  }
  expect((await c.machineNetworks.listMachineLeases({})).leases.map((l) => l.machine)).toEqual(["alpha", "beta"]);
  await expect(c.machineNetworks.setMachinePorts({ machine: "nope", ports: [] })).rejects.toThrow(/not attached/);
  await expect(c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "sctp", port: 80 }] })).rejects.toThrow(/invalid protocol/);
  await expect(c.machineNetworks.setMachinePorts({ machine: "alpha", ports: [{ protocol: "tcp", port: 80, hostIp: "1.2.3.4 -j ACCEPT" }] })).rejects.toThrow(/invalid host IP/);
});

test("after netd is killed and after a daemon restart, everything is re-adopted and nothing duplicated", async () => {
  const before = await c.machineNetworks.listMachineLeases({});
  const pid = await netdPid();
  process.kill(pid, "SIGKILL");
  await waitFor("netd restarted", async () => (await netdPid().catch(() => pid)) !== pid);
  expect(await c.machineNetworks.listMachineLeases({})).toEqual(before);
  // A daemon stop keeps machines' networking (they keep running); someone deletes a TAP meanwhile.
  await d.stop();
  expect(await link(before.bridge)).toBeDefined();
  await run(["ip", "link", "del", before.leases[1].tap]);
  await d.start();
  const after = await c.machineNetworks.listMachineLeases({});
  expect(after).toEqual(before);
  for (const l of after.leases) expect((await link(l.tap))?.master).toBe(after.bridge);
  const again = await c.machineNetworks.attachMachine({ machine: "alpha" });
  expect(again.ip).toBe(before.leases[0].ip);
  const taps = (await run(["ip", "-br", "link"])).stdout.split("\n").filter((l) => l.startsWith(`${names.ifPrefix}t`));
  expect(taps).toHaveLength(2);
  const rules = (await run(["iptables-save", "-t", "nat"])).stdout.split("\n").filter((l) => l.includes(`-s ${after.subnet} ! -o`));
  expect(rules).toHaveLength(1);
}, 60_000);

test("DetachMachine removes the TAP, the lease and the rules; the last one takes the bridge", async () => {
  const leases = await c.machineNetworks.listMachineLeases({});
  const [alpha, beta] = leases.leases;
  await c.machineNetworks.detachMachine({ machine: "beta" });
  await c.machineNetworks.detachMachine({ machine: "beta" }); // idempotent
  expect(await link(beta.tap)).toBeUndefined();
  expect((await c.machineNetworks.listMachineLeases({})).leases.map((l) => l.machine)).toEqual(["alpha"]);
  await c.machineNetworks.detachMachine({ machine: "alpha" });
  expect(await link(alpha.tap)).toBeUndefined();
  expect(await link(leases.bridge)).toBeUndefined();
  const after = await c.machineNetworks.listMachineLeases({});
  expect(after.leases).toEqual([]);
  expect(after.subnet).toBe("");
  expect((await run(["iptables-save"])).stdout).not.toContain(leases.subnet);
});
