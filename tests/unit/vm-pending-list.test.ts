/**
 * The VM-mode skip list (tests/helpers/engine-mode.ts) names tests by title: every entry
 * must still name a test of the suites that run in both modes, or a renamed test would
 * silently run (and fail) in VM mode while its stale entry lingers. The suites must
 * take `test` from the helper, or the list would not apply to them.
 */
import { expect, test } from "bun:test";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { VM_GAPS, VM_PENDING } from "../helpers/engine-mode.ts";

const E2E = join(import.meta.dir, "..", "e2e");
const SUITES = readdirSync(E2E).filter((f) => /^(containers|networks|volumes|compose|images-.*)\.test\.ts$/.test(f));

test("the suites that run in both modes take test() from the engine-mode helper", () => {
  expect(SUITES.length).toBeGreaterThanOrEqual(11);
  for (const f of SUITES) {
    const src = readFileSync(join(E2E, f), "utf8");
    expect({ f, helper: /import \{[^}]*\btest\b[^}]*\} from "\.\.\/helpers\/engine-mode\.ts"/.test(src) }).toEqual({ f, helper: true });
    expect({ f, bunTest: /import \{[^}]*\btest\b[^}]*\} from "bun:test"/.test(src) }).toEqual({ f, bunTest: false });
  }
});

test("every VM_PENDING entry names a test in those suites and a known gap", () => {
  const source = SUITES.map((f) => readFileSync(join(E2E, f), "utf8")).join("\n");
  for (const [title, gap] of Object.entries(VM_PENDING)) {
    expect({ title, found: new RegExp(`test\\(\\s*${JSON.stringify(title).replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`).test(source) }).toEqual({ title, found: true });
    expect(Object.keys(VM_GAPS)).toContain(gap);
  }
});
