/**
 * The e2e suites that run in both engine modes (issue 13: containers, networks,
 * volumes, compose, images-*) import `test` from here instead of bun:test. The mode is
 * one parameter, ARCBOX_TEST_ENGINE (TestDaemon reads it too); a test is written once.
 *
 * In VM mode a test that needs what the engine machine does not do yet is reported as
 * todo, with its reason in the name, instead of running: the one declared list is
 * VM_PENDING below (test title → reason key), so nothing is hidden and the list shrinks
 * as features land. Every other test runs, with a longer timeout (under TCG a container
 * start takes seconds, the first one waits for the machine's boot).
 */
import { test as bunTest } from "bun:test";
import { TEST_ENGINE } from "./daemon.ts";

export { TEST_ENGINE };
export const IN_VM = TEST_ENGINE === "vm";

/** What VM mode lacks today, once each; VM_PENDING names one per test. */
export const VM_GAPS = {} as const;
export type VmGap = keyof typeof VM_GAPS;

/**
 * Tests skipped in VM mode, by title (the `test(...)` name, unique across the suites),
 * with the gap that stops them. Remove an entry when its feature lands; a test that
 * passes in VM mode must not be listed.
 */
export const VM_PENDING: Readonly<Record<string, VmGap>> = {
  // containers.test.ts
  // volumes.test.ts
  // networks.test.ts
  // compose.test.ts
};

/** A test's reason to be todo in the current mode, or undefined when it runs. */
export function vmPendingReason(title: string): string | undefined {
  if (!IN_VM) return undefined;
  const gap = VM_PENDING[title];
  return gap ? VM_GAPS[gap] : undefined;
}

/**
 * Per-test timeout in the current mode: as given in host mode; in VM mode at least
 * ten minutes, or three times what was given (a test's own waits are host-mode sized).
 */
export function modeTimeout(ms: number | undefined): number | undefined {
  if (!IN_VM) return ms;
  return Math.max(600_000, (ms ?? 0) * 3);
}

type Body = () => void | Promise<unknown>;

/** bun:test's `test`, aware of the engine mode (see the file comment). */
export function test(title: string, fn: Body, timeout?: number): void {
  const reason = vmPendingReason(title);
  if (reason) bunTest.todo(`${title} [VM mode: ${reason}]`, fn);
  else bunTest(title, fn, modeTimeout(timeout));
}
