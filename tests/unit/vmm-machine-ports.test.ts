/** vmm's automatic port forwarding: agent listeners -> netd, coalesced, cleared on stop. */
import { expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { createLogger } from "../../lib/log.ts";
import { RuntimeEventSchema } from "../../proto/gen/arcbox/machines/v1/machines_pb.ts";
import type { AgentClient } from "../../services/vmm/core/agent-client.ts";
import type { ForwardedPort, MachineNetwork } from "../../services/vmm/core/machine-network.ts";
import { MachinePortSync } from "../../services/vmm/core/machine-ports.ts";

const log = createLogger("test");
const portsEvent = create(RuntimeEventSchema, { type: "machine_ports" });

function fakes() {
  let listening = [80];
  let asks = 0;
  const sets: Array<{ machine: string; ports: ForwardedPort[] }> = [];
  let gate: Promise<void> = Promise.resolve();
  const agent = {
    isOpen: true,
    call: async (method: string) => {
      expect(method).toBe("listeningPorts");
      asks++;
      await gate;
      return { ports: listening.map((port) => ({ protocol: "tcp", port, loopbackOnly: false })) };
    },
  } as unknown as AgentClient;
  const network: MachineNetwork = {
    attach: async () => undefined,
    detach: async () => {},
    setPorts: async (machine, ports) => {
      sets.push({ machine, ports });
      const failed = ports.filter((p) => p.port === 22).map((p) => `port 127.0.0.1:${p.port}/tcp is already in use`);
      return { ports: ports.filter((p) => p.port !== 22), failed };
    },
  };
  return {
    agent,
    network,
    sets,
    asks: () => asks,
    listen: (p: number[]) => (listening = p),
    hold: () => {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return release;
    },
  };
}

test("the agent's listeners go to netd on host 127.0.0.1; taken ports show as errors", async () => {
  const f = fakes();
  const sync = new MachinePortSync(f.network, () => f.agent, log);
  f.listen([22, 8080]);
  sync.sync("m1");
  await Bun.sleep(10);
  expect(f.sets).toEqual([
    {
      machine: "m1",
      ports: [
        { protocol: "tcp", port: 22, hostIp: "127.0.0.1" },
        { protocol: "tcp", port: 8080, hostIp: "127.0.0.1" },
      ],
    },
  ]);
  expect(sync.forwarding("m1")).toEqual({ ports: ["8080/tcp"], errors: ["port 127.0.0.1:22/tcp is already in use"] });
});

test("events during a sync coalesce into one more sync with the latest set", async () => {
  const f = fakes();
  const sync = new MachinePortSync(f.network, () => f.agent, log);
  const release = f.hold();
  sync.onEvent("m1", portsEvent);
  sync.onEvent("m1", portsEvent);
  sync.onEvent("m1", portsEvent);
  sync.onEvent("m1", create(RuntimeEventSchema, { type: "machine_exec_exit" }));
  f.listen([9000]);
  release();
  await Bun.sleep(10);
  expect(f.asks()).toBe(2);
  expect(f.sets.at(-1)!.ports.map((p) => p.port)).toEqual([9000]);
  expect(sync.forwarding("m1").ports).toEqual(["9000/tcp"]);
});

test("a stopped machine's ports are cleared after a sync in flight", async () => {
  const f = fakes();
  const sync = new MachinePortSync(f.network, () => f.agent, log);
  const release = f.hold();
  sync.sync("m1");
  const cleared = sync.clear("m1");
  release();
  await cleared;
  expect(f.sets.at(-1)).toEqual({ machine: "m1", ports: [] });
  expect(sync.forwarding("m1")).toEqual({ ports: [], errors: [] });
});

test("no agent session: nothing is asked", async () => {
  const f = fakes();
  const sync = new MachinePortSync(f.network, () => undefined, log);
  sync.sync("m1");
  await Bun.sleep(10);
  expect(f.asks()).toBe(0);
  expect(f.sets).toEqual([]);
});

test("ports a stopped machine held are retried for machines that could not get them", async () => {
  const f = fakes();
  const sync = new MachinePortSync(f.network, () => f.agent, log);
  f.listen([22]);
  sync.sync("m2");
  await Bun.sleep(10);
  expect(sync.forwarding("m2").errors.length).toBe(1);
  const asked = f.asks();
  await sync.clear("m1");
  await Bun.sleep(10);
  expect(f.asks()).toBe(asked + 1);
  expect(f.sets.at(-1)!.machine).toBe("m2");
});
