/** The WebSocket server codec of the Docker API's attach/ws (services/apid/docker/streams/websocket.ts). */
import { expect, test } from "bun:test";
import { Duplex } from "node:stream";
import { acceptHandshake, encodeFrame, WebSocketDuplex } from "../../services/apid/docker/streams/websocket.ts";
import type { IncomingMessage } from "node:http";

/** A socket stand-in: `written` collects what the server sent, `feed` delivers client bytes. */
function fakeSocket() {
  const written: Buffer[] = [];
  let ended = false;
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _e, cb) {
      written.push(Buffer.from(chunk));
      cb();
    },
    final(cb) {
      ended = true;
      cb();
    },
  });
  return { socket, written, feed: (b: Buffer) => socket.push(b), ended: () => ended };
}

/** A client frame: masked, as RFC 6455 requires of clients. */
function clientFrame(opcode: number, payload: Buffer, fin = true, mask = true): Buffer {
  const key = Buffer.from([1, 2, 3, 4]);
  const body = Buffer.from(payload.map((b, i) => (mask ? b ^ key[i & 3]! : b)));
  const len = payload.length;
  const head = len < 126 ? Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | len]) : Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | 126, len >> 8, len & 0xff]);
  return Buffer.concat([head, mask ? key : Buffer.alloc(0), body]);
}

const messages = (ws: WebSocketDuplex) => {
  const got: string[] = [];
  ws.on("data", (b: Buffer) => got.push(b.toString()));
  return got;
};

test("the accept key of RFC 6455's example", () => {
  const req = { method: "GET", headers: { upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" } } as unknown as IncomingMessage;
  expect(acceptHandshake(req)).toBe("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  expect(() => acceptHandshake({ ...req, headers: { ...req.headers, "sec-websocket-version": "8" } } as unknown as IncomingMessage)).toThrow(/unsupported version/);
});

test("fragments are joined, split frames are reassembled, ping is answered", async () => {
  const s = fakeSocket();
  const ws = new WebSocketDuplex(s.socket, true);
  const got = messages(ws);
  const whole = Buffer.concat([clientFrame(0x1, Buffer.from("hel"), false), clientFrame(0x0, Buffer.from("lo")), clientFrame(0x9, Buffer.from("p")), clientFrame(0x2, Buffer.alloc(300, 97))]);
  // Delivered in awkward pieces: every frame boundary falls inside a chunk.
  for (let i = 0; i < whole.length; i += 7) s.feed(whole.subarray(i, i + 7));
  await Bun.sleep(0);
  expect(got).toEqual(["hello", "a".repeat(300)]);
  expect(s.written).toContainEqual(encodeFrame(0xa, Buffer.from("p")));
});

test("writes are unmasked data frames of the chosen type; end sends a close frame", async () => {
  const s = fakeSocket();
  const ws = new WebSocketDuplex(s.socket, false);
  ws.write(Buffer.from("out"));
  ws.write(Buffer.alloc(70_000, 98));
  ws.end();
  await new Promise((r) => ws.once("finish", r));
  expect(s.written[0]).toEqual(Buffer.from([0x81, 3, ...Buffer.from("out")]));
  expect(s.written[1]!.subarray(0, 10)).toEqual(Buffer.from([0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]));
  expect(s.written[2]).toEqual(Buffer.from([0x88, 2, 0x03, 0xe8]));
  expect(s.ended()).toBe(true);
});

test("an unmasked client frame is a protocol error (1002); a close is echoed", async () => {
  const bad = fakeSocket();
  const ws = new WebSocketDuplex(bad.socket, true);
  const got = messages(ws);
  bad.feed(clientFrame(0x2, Buffer.from("x"), true, false));
  await Bun.sleep(0);
  expect(got).toEqual([]);
  expect(bad.written).toEqual([Buffer.from([0x88, 2, 0x03, 0xea])]);

  const s = fakeSocket();
  const ws2 = new WebSocketDuplex(s.socket, true);
  const ended = new Promise((r) => ws2.once("end", r));
  messages(ws2);
  s.feed(clientFrame(0x8, Buffer.from([0x03, 0xe9])));
  await ended;
  expect(s.written).toEqual([Buffer.from([0x88, 2, 0x03, 0xe9])]);
});

test("control frames over 125 bytes and unknown close codes are protocol errors; input after a close is dropped", async () => {
  const big = fakeSocket();
  new WebSocketDuplex(big.socket, true).resume();
  big.feed(clientFrame(0x9, Buffer.alloc(126)));
  await Bun.sleep(0);
  expect(big.written).toEqual([Buffer.from([0x88, 2, 0x03, 0xea])]);

  const s = fakeSocket();
  const ws = new WebSocketDuplex(s.socket, true);
  const got = messages(ws);
  // 1005 may never be sent on the wire: answered with 1002; the data frame after the
  // close is not delivered (the stream has ended).
  s.feed(Buffer.concat([clientFrame(0x8, Buffer.from([0x03, 0xed])), clientFrame(0x2, Buffer.from("late"))]));
  await Bun.sleep(0);
  expect(got).toEqual([]);
  expect(s.written).toEqual([Buffer.from([0x88, 2, 0x03, 0xea])]);
  expect(s.ended()).toBe(true);
});
