import { expect, test } from "bun:test";
import { EngineApplied } from "../../services/netd/core/engine-applied.ts";

test("a step applied in this engine boot is skipped until its content changes or the machine reboots", async () => {
  const applied = new EngineApplied();
  const runs: string[] = [];
  const step = (content: string) => applied.once("bridge:ab0", content, async () => void runs.push(content));
  await step("plan-1");
  await step("plan-1");
  expect(runs).toEqual(["plan-1"]);
  await step("plan-2");
  expect(runs).toEqual(["plan-1", "plan-2"]);
  applied.reset();
  await step("plan-2");
  expect(runs).toEqual(["plan-1", "plan-2", "plan-2"]);
  applied.forget("bridge:ab0");
  await step("plan-2");
  expect(runs).toHaveLength(4);
});

test("a failed step is not remembered: the next attach tries it again", async () => {
  const applied = new EngineApplied();
  let calls = 0;
  const failing = () =>
    applied.once("firewall", "rules", async () => {
      calls++;
      throw new Error("iptables-restore: no such chain");
    });
  await expect(failing()).rejects.toThrow("no such chain");
  await expect(failing()).rejects.toThrow("no such chain");
  expect(calls).toBe(2);
  // A success after a failure of a different content is remembered as usual.
  await applied.once("firewall", "rules", async () => void calls++);
  await applied.once("firewall", "rules", async () => void calls++);
  expect(calls).toBe(3);
});
