import { describe, expect, test } from "bun:test";
import { canTransition, ContainerLifecycle, TRANSITIONS, targetStatus, ZERO_TIME, type RecordStore } from "../../services/apid/core/container-lifecycle.ts";
import type { ContainerRecord, ContainerStatus } from "../../services/apid/core/container-record.ts";

const STATUSES: ContainerStatus[] = ["created", "running", "paused", "restarting", "exited", "removing", "dead"];

function record(status: ContainerStatus = "created"): ContainerRecord {
  return {
    id: "c".repeat(64),
    name: "/web",
    created: new Date().toISOString(),
    imageRef: "busybox",
    imageId: "sha256:1",
    path: "sh",
    args: [],
    config: { Labels: { team: "a" } },
    hostConfig: {},
    endpointsConfig: {},
    state: { status, pid: 0, exitCode: 0, error: "", oomKilled: false, startedAt: ZERO_TIME, finishedAt: ZERO_TIME },
    restartCount: 0,
    manualStop: false,
    rootfs: { lowerDirs: [], upperDir: "", workDir: "" },
    logPath: "",
    mounts: [],
    network: null,
    stdioSocket: "",
  };
}

/** A store that records each write as a step and can be made to fail (reverting, as the real one does). */
function harness(opts: { failSave?: boolean } = {}) {
  const steps: string[] = [];
  const persisted = new Map<string, string>();
  const store: RecordStore & { fail: boolean } = {
    fail: !!opts.failSave,
    save(rec) {
      if (this.fail) {
        const last = persisted.get(rec.id);
        if (last) Object.assign(rec, JSON.parse(last));
        throw new Error("database or disk is full");
      }
      persisted.set(rec.id, JSON.stringify(rec));
      steps.push(`save:${rec.state.status}`);
    },
    commitCreate(rec) {
      persisted.set(rec.id, JSON.stringify(rec));
      steps.push(`commit:${rec.state.status}`);
    },
    delete(id) {
      persisted.delete(id);
      steps.push("delete");
    },
  };
  const events = { publish: (type: string, action: string) => void steps.push(`event:${type}:${action}`) };
  const warnings: string[] = [];
  const lc = new ContainerLifecycle(store, events, { warn: (m: string) => void warnings.push(m) });
  return { lc, steps, store, persisted, warnings };
}

const endpoint = { networkId: "n1", networkName: "bridge", endpointId: "e1", ipAddress: "10.0.0.2", ipPrefixLen: 24, gateway: "10.0.0.1", macAddress: "", aliases: [] };
const network = { netnsPath: "", hostNetwork: false, hostsPath: "", resolvConfPath: "", hostnamePath: "", endpoints: [endpoint], ports: [] };

describe("container lifecycle state machine", () => {
  test("the transition table: allowed and refused changes", () => {
    expect(canTransition("created", "running")).toBe(true);
    expect(canTransition("running", "paused")).toBe(true);
    expect(canTransition("exited", "restarting")).toBe(true);
    expect(canTransition("removing", "dead")).toBe(true);
    expect(canTransition("dead", "removing")).toBe(true);
    expect(canTransition("created", "paused")).toBe(false);
    expect(canTransition("exited", "paused")).toBe(false);
    expect(canTransition("removing", "running")).toBe(false);
    expect(canTransition("dead", "running")).toBe(false);
    expect(canTransition("paused", "restarting")).toBe(false);
    // Every status may be updated in place and every listed target is a status.
    for (const s of STATUSES) {
      expect(canTransition(s, s)).toBe(true);
      for (const t of TRANSITIONS[s]) expect(STATUSES).toContain(t);
    }
    expect(targetStatus("restarting", { kind: "start-failed", error: "x", exitCode: 127 })).toBe("exited");
    expect(targetStatus("created", { kind: "start-failed", error: "x", exitCode: 127 })).toBe("created");
  });

  test("a refused transition changes nothing, persists nothing, emits nothing", () => {
    const { lc, steps } = harness();
    const rec = record("exited");
    expect(() => lc.apply(rec, { kind: "pause" })).toThrow(/invalid state transition exited -> paused/);
    expect(rec.state.status).toBe("exited");
    expect(steps).toEqual([]);
  });

  test("create, start, pause, unpause, exit: persist, then emit, then wake, in that order", async () => {
    const { lc, steps } = harness();
    const rec = record();
    lc.apply(rec, { kind: "create" });
    const exited = lc.waitExit(rec.id).then((r) => (steps.push(`woke:exit:${r.code}`), r));
    lc.apply(rec, { kind: "start", pid: 42, startedAt: new Date(Date.now() - 3000).toISOString(), network });
    expect(rec.state).toMatchObject({ status: "running", pid: 42, finishedAt: ZERO_TIME });
    lc.apply(rec, { kind: "pause" });
    lc.apply(rec, { kind: "unpause" });
    lc.apply(rec, { kind: "exit", exitCode: 3, oomKilled: true, finishedAt: new Date().toISOString(), network });
    expect(await exited).toEqual({ code: 3, error: "" });
    expect(rec.state).toMatchObject({ status: "exited", pid: 0, exitCode: 3, oomKilled: true });
    expect(steps).toEqual([
      "commit:created",
      "event:container:create",
      "save:running",
      "event:network:connect",
      "event:container:start",
      "save:paused",
      "event:container:pause",
      "save:running",
      "event:container:unpause",
      "save:exited",
      "event:container:oom",
      "event:container:die",
      "event:network:disconnect",
      "woke:exit:3",
    ]);
  });

  test("removal wakes removed and exit waiters after the delete and the destroy event", async () => {
    const { lc, steps, persisted } = harness();
    const rec = record("exited");
    rec.state.exitCode = 7;
    const removed = lc.waitRemoved(rec.id).then((r) => (steps.push("woke:removed"), r));
    const exit = lc.waitExit(rec.id).then((r) => (steps.push("woke:exit"), r));
    lc.apply(rec, { kind: "remove", volumes: true });
    expect(rec.removal).toEqual({ volumes: true });
    expect(JSON.parse(persisted.get(rec.id)!).state.status).toBe("removing");
    lc.apply(rec, { kind: "removed" });
    expect(await removed).toEqual({ code: 7, error: "" });
    await exit;
    expect(steps).toEqual(["save:removing", "delete", "event:container:destroy", "woke:removed", "woke:exit"]);
    expect(lc.waiterCount()).toBe(0);
  });

  test("a failed removal leaves the record dead, and the next rm may begin again", () => {
    const { lc } = harness();
    const rec = record("exited");
    lc.apply(rec, { kind: "remove", volumes: false });
    lc.apply(rec, { kind: "remove-failed", error: "removal failed: busy" });
    expect(rec.state).toMatchObject({ status: "dead", error: "removal failed: busy" });
    expect(() => lc.apply(rec, { kind: "start", pid: 1, startedAt: new Date().toISOString(), network: null })).toThrow(/invalid state transition/);
    lc.apply(rec, { kind: "remove", volumes: true });
    expect(rec.state.status).toBe("removing");
  });

  test("a restart policy: exited -> restarting -> running, or cancelled back to exited", () => {
    const { lc, steps } = harness();
    const rec = record("exited");
    lc.apply(rec, { kind: "restart-scheduled" });
    expect(rec.state.status).toBe("restarting");
    lc.apply(rec, { kind: "start-failed", error: "no such file", exitCode: 127 });
    expect(rec.state).toMatchObject({ status: "exited", exitCode: 127, error: "no such file" });
    lc.apply(rec, { kind: "restart-scheduled" });
    lc.apply(rec, { kind: "restart-cancelled" });
    expect(rec.state.status).toBe("exited");
    // No events for these: Docker emits "restart" only once the container runs again.
    expect(steps.filter((s) => s.startsWith("event:"))).toEqual([]);
  });

  test("a required save that fails throws, emits nothing, wakes nobody; the record is as persisted", async () => {
    const { lc, steps, store } = harness();
    const rec = record();
    lc.apply(rec, { kind: "create" });
    lc.apply(rec, { kind: "start", pid: 5, startedAt: new Date().toISOString(), network: null });
    store.fail = true;
    expect(() => lc.apply(rec, { kind: "pause" })).toThrow(/disk is full/);
    expect(rec.state.status).toBe("running");
    expect(steps.at(-1)).toBe("event:container:start");
  });

  test("an exit that cannot be saved is still reported, and the record shows it", async () => {
    const { lc, steps, store, warnings } = harness();
    const rec = record();
    lc.apply(rec, { kind: "create" });
    lc.apply(rec, { kind: "start", pid: 5, startedAt: new Date().toISOString(), network: null });
    const exited = lc.waitExit(rec.id);
    store.fail = true;
    expect(lc.apply(rec, { kind: "exit", exitCode: 137, oomKilled: false, finishedAt: new Date().toISOString(), network: null })).toBe(false);
    expect(rec.state).toMatchObject({ status: "exited", exitCode: 137 });
    expect(await exited).toEqual({ code: 137, error: "" });
    expect(steps.at(-1)).toBe("event:container:die");
    expect(warnings.length).toBe(1);
  });

  test("failRemoval answers removal waiters with the reason and keeps exit waiters", async () => {
    const { lc } = harness();
    const rec = record("exited");
    const removed = lc.waitRemoved(rec.id);
    void lc.waitExit(rec.id);
    lc.failRemoval(rec.id, { code: 1, error: "removal failed" });
    expect(await removed).toEqual({ code: 1, error: "removal failed" });
    expect(lc.waiterCount()).toBe(1);
  });

  test("an aborted wait leaves no waiter behind (a client that went away)", async () => {
    const { lc } = harness();
    const rec = record("running");
    const gone = new AbortController();
    void lc.waitExit(rec.id, gone.signal);
    void lc.waitRemoved(rec.id, gone.signal);
    const kept = lc.waitExit(rec.id);
    expect(lc.waiterCount()).toBe(3);
    gone.abort();
    expect(lc.waiterCount()).toBe(1);
    lc.apply(rec, { kind: "exit", exitCode: 0, oomKilled: false, finishedAt: new Date().toISOString(), network: null });
    expect(await kept).toEqual({ code: 0, error: "" });
    expect(lc.waiterCount()).toBe(0);
    const already = new AbortController();
    already.abort();
    void lc.waitExit(rec.id, already.signal);
    expect(lc.waiterCount()).toBe(0);
  });
});
