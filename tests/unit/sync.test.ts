import { expect, test } from "bun:test";
import { FrameDecoder, encodeFrame } from "../../guest/protocol/frames.ts";
import { SYNC, SyncScanner } from "../../guest/protocol/sync.ts";

test("SYNC is 16 bytes starting with the one 0xff", () => {
  expect(SYNC.length).toBe(16);
  expect([...SYNC].filter((b) => b === 0xff)).toEqual([0xff]);
  expect(SYNC[0]).toBe(0xff);
});

test("the scanner skips an old session's bytes, finds SYNC split across chunks, and keeps what follows", () => {
  const frame = encodeFrame({ k: "res", id: 1, body: new Uint8Array([0xff, 1, 2]) });
  // Stale bytes, including a false start (0xff + a partial match), then SYNC, then a frame.
  const stream = Buffer.concat([Buffer.from([1, 2, 0xff, 0x41, 0x52, 0xff, 9]), SYNC, frame]);
  for (let cut = 1; cut < stream.length; cut++) {
    const s = new SyncScanner();
    const decoder = new FrameDecoder();
    const frames: unknown[] = [];
    for (const chunk of [stream.subarray(0, cut), stream.subarray(cut)]) {
      const rest = s.push(chunk);
      if (rest) frames.push(...decoder.push(rest));
    }
    expect(s.synced).toBe(true);
    expect(frames).toEqual([{ k: "res", id: 1, body: new Uint8Array([0xff, 1, 2]) }]);
  }
});

test("no SYNC, no data", () => {
  const s = new SyncScanner();
  expect(s.push(Buffer.from("ARCBOX/AGENT/1\n"))).toBeUndefined();
  expect(s.synced).toBe(false);
});
