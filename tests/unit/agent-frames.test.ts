import { expect, test } from "bun:test";
import { encodeFrame, FrameDecoder } from "../../guest/protocol/frames.ts";

test("an io frame with bulk data decodes to the same message, in any chunking", () => {
  const data = Buffer.alloc(70_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  // `data` first: the encoder must still place it last itself.
  const msgs = [
    { data: data.subarray(5), k: "io", sid: "io-0123456789abcdef", fd: 1 },
    { k: "io", sid: "s", fd: 2, data: data.subarray(0, 1024) },
    { k: "io", sid: "s", fd: 1, data: data.subarray(0, 10) },
    { k: "res", id: 7, body: new Uint8Array([1, 2, 3]) },
  ];
  const wire = Buffer.concat(msgs.map((m) => encodeFrame(m)));
  const dec = new FrameDecoder();
  const out: unknown[] = [];
  for (let o = 0; o < wire.length; o += 4099) out.push(...dec.push(wire.subarray(o, o + 4099)));
  expect(out.length).toBe(msgs.length);
  for (const [i, m] of msgs.entries()) {
    const got = out[i] as Record<string, unknown>;
    for (const [k, v] of Object.entries(m)) {
      if (v instanceof Uint8Array) expect(Buffer.from(got[k] as Uint8Array).equals(Buffer.from(v))).toBe(true);
      else expect(got[k]).toBe(v);
    }
  }
});
