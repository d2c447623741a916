/**
 * A connected Unix socket as a node Duplex, connected with a blocking connect(2)
 * through bun:ffi. Why not Bun.connect or node:net: when the peer accepts, writes and
 * closes before Bun's event loop completes a non-blocking connect (which a finished
 * exec's shim does), Bun reports a failed connect and the output is lost. connect(2)
 * on a Unix socket never waits on the network, so doing it synchronously is cheap.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { close, write } from "node:fs";
import { Duplex } from "node:stream";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const SHUT_WR = 1;

let lib: ReturnType<typeof load> | undefined;
function load() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    connect: { args: [FFIType.i32, FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
    shutdown: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
  });
}
const libc = () => (lib ??= load()).symbols;

function connectFd(path: string): number {
  const bytes = new TextEncoder().encode(path);
  if (bytes.length >= 108) throw new Error(`socket path too long: ${path}`);
  // struct sockaddr_un { sa_family_t sun_family; char sun_path[108]; }
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(bytes, 2);
  // SAFETY: socket(2) takes three ints and touches no memory of ours.
  const fd = libc().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket() failed for ${path}`);
  // SAFETY: `addr` is a live 110-byte buffer holding a NUL-terminated sockaddr_un; the
  // length passed covers only initialized bytes; connect(2) reads it during the call and
  // keeps no reference, and `addr` stays referenced until the call returns.
  const rc = libc().connect(fd, ptr(addr), 2 + bytes.length + 1);
  if (rc !== 0) {
    // SAFETY: closes the descriptor we just created; no memory is passed.
    libc().close(fd);
    throw Object.assign(new Error(`cannot connect to ${path}`), { code: "ECONNREFUSED" });
  }
  return fd;
}

export function connectUnix(path: string): Duplex {
  const fd = connectFd(path);
  let closed = false;
  // Writes run on Bun's thread pool; the half-close must wait for the last of them.
  let lastWrite: Promise<void> = Promise.resolve();
  const writeAll = (buf: Buffer): Promise<void> =>
    new Promise((resolve, reject) =>
      write(fd, buf, 0, buf.length, null, (err, n) => {
        if (err) return reject(err);
        if (n < buf.length) return writeAll(buf.subarray(n)).then(resolve, reject);
        resolve();
      }),
    );
  const reader = Bun.file(fd).stream().getReader();
  const duplex = new Duplex({
    allowHalfOpen: true,
    read() {},
    write(chunk: Buffer, _enc, cb) {
      if (closed) return cb(new Error("stdio socket closed"));
      lastWrite = lastWrite.then(() => writeAll(chunk));
      lastWrite.then(() => cb(), cb);
    },
    final(cb) {
      void lastWrite
        .catch(() => {})
        .then(() => {
          // SAFETY: shutdown(2) on our own open descriptor; no memory is passed.
          if (!closed) libc().shutdown(fd, SHUT_WR);
          cb();
        });
    },
    destroy(err, cb) {
      if (!closed) {
        closed = true;
        void reader.cancel().catch(() => {});
        close(fd, () => cb(err));
      } else cb(err);
    },
  });
  void (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        duplex.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
      }
    } catch {}
    duplex.push(null);
  })();
  return duplex;
}
