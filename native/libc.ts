/**
 * Direct libc calls through bun:ffi for the few syscalls Bun does not expose.
 * Only scalars cross the boundary here, and Int32Arrays that libc fills (socketpair, ioctl).
 */
import { dlopen, FFIType, ptr } from "bun:ffi";

const LOCK_EX = 2;
const LOCK_NB = 4;

let lib: ReturnType<typeof open> | undefined;
function open() {
  return dlopen("libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getpid: { args: [], returns: FFIType.i32 },
    socketpair: { args: [FFIType.i32, FFIType.i32, FFIType.i32, FFIType.ptr], returns: FFIType.i32 },
    ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  });
}
function libc() {
  lib ??= open();
  return lib.symbols;
}

/**
 * Takes an exclusive, non-blocking flock on an open file descriptor.
 * Returns false when another process holds it. The kernel drops the lock when the
 * holder dies, so a crashed daemon never leaves a lock that blocks the next one.
 */
export function tryLockExclusive(fd: number): boolean {
  // SAFETY: flock(2) takes two ints and touches no memory of ours; `fd` is an open
  // descriptor owned by the caller for the lifetime of the lock.
  return libc().flock(fd, LOCK_EX | LOCK_NB) === 0;
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;

/**
 * A connected pair of Unix stream sockets, both close-on-exec (a child gets one only
 * through an explicit stdio slot, where dup2 clears the flag).
 */
export function socketPair(): [number, number] {
  const sv = new Int32Array(2);
  // SAFETY: socketpair(2) writes exactly two ints into `sv`, which is 8 bytes, owned by
  // us and alive (referenced below) for the whole call; the return value is checked.
  if (libc().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ptr(sv)) !== 0) throw new Error("socketpair failed");
  return [sv[0]!, sv[1]!];
}

/** SIOCOUTQ (= TIOCOUTQ): for a Unix stream socket, what is sent but not yet read by the peer. */
const SIOCOUTQ = 0x5411;

/**
 * How much of what was written on socket `fd` its peer has not read yet (in the
 * kernel's accounting, 0 once the peer has read everything), or -1 if the kernel does
 * not say (not a socket, closed).
 */
export function unreadByPeer(fd: number): number {
  const out = new Int32Array(1);
  // SAFETY: ioctl(SIOCOUTQ) writes one int into `out`, a live 4-byte buffer that stays
  // referenced for the call; `fd` is the caller's open socket (a closed one gives -1).
  const rc = libc().ioctl(fd, SIOCOUTQ, ptr(out));
  return rc === 0 ? out[0]! : -1;
}
