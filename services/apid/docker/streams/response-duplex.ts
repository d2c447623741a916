/**
 * A write-only Duplex whose output becomes a fetch ReadableStream: lets the stdio
 * splicer serve non-upgraded attach/exec requests as a streamed HTTP response body.
 */
import { Duplex } from "node:stream";

export function responseDuplex(): { duplex: Duplex; body: ReadableStream<Uint8Array> } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  const body = new ReadableStream<Uint8Array>({
    start: (c) => void (controller = c),
    cancel: () => {
      closed = true;
      duplex.destroy();
    },
  });
  const duplex = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (!closed) controller.enqueue(new Uint8Array(chunk));
      cb();
    },
    final(cb) {
      if (!closed) (closed = true), controller.close();
      cb();
    },
  });
  // No stdin comes from a plain HTTP response: the readable side is already finished.
  duplex.push(null);
  return { duplex, body };
}
