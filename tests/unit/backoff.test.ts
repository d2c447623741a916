import { expect, test } from "bun:test";
import { Backoff } from "../../services/supervisor/core/backoff.ts";

test("restart backoff doubles up to the cap and resets after a stable run", () => {
  const b = new Backoff(100, 1000, 5000);
  expect([b.next(10), b.next(10), b.next(10), b.next(10), b.next(10)]).toEqual([100, 200, 400, 800, 1000]);
  expect(b.next(6000)).toBe(100);
  expect(b.next(10)).toBe(200);
});
