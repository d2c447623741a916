/**
 * Direct libc calls through bun:ffi for the few syscalls Bun does not expose.
 * Only scalar arguments cross the boundary here; no pointers are passed.
 */
import { dlopen, FFIType } from "bun:ffi";

const LOCK_EX = 2;
const LOCK_NB = 4;

let lib: ReturnType<typeof open> | undefined;
function open() {
  return dlopen("libc.so.6", {
    flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    getpid: { args: [], returns: FFIType.i32 },
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
