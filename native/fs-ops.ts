/**
 * File-system syscalls that node:fs lacks, for unpacking image layers: mknod (device
 * nodes, fifos, overlayfs whiteouts) and lsetxattr/lgetxattr (PAX xattrs, opaque dirs).
 * Paths and values are passed as NUL-terminated Buffers owned by the caller.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

let lib: ReturnType<typeof open> | undefined;
function open() {
  return dlopen("libc.so.6", {
    mknod: { args: [FFIType.ptr, FFIType.u32, FFIType.u64], returns: FFIType.i32 },
    lsetxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.i32], returns: FFIType.i32 },
    lgetxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    llistxattr: { args: [FFIType.ptr, FFIType.ptr, FFIType.u64], returns: FFIType.i64 },
    __errno_location: { args: [], returns: FFIType.ptr },
  });
}
function libc() {
  lib ??= open();
  return lib.symbols;
}

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

function errno(): number {
  // SAFETY: __errno_location returns this thread's errno slot, valid for the thread's life;
  // we read 4 bytes from it right after the failing call on the same (JS) thread.
  return read.i32(libc().__errno_location()!, 0);
}

function fail(op: string, path: string): never {
  const code = errno();
  const err = new Error(`${op} ${path}: errno ${code}`) as Error & { errno: number };
  err.errno = code;
  throw err;
}

/** Linux makedev(): the dev_t encoding glibc uses. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  const p = cstr(path);
  // SAFETY: `p` is a NUL-terminated buffer that stays alive (referenced) for the call;
  // mknod only reads it.
  if (libc().mknod(ptr(p), mode, makedev(major, minor)) !== 0) fail("mknod", path);
}

/** Sets an extended attribute on the path itself (not a symlink's target). */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const p = cstr(path);
  const n = cstr(name);
  // An empty value still needs a valid pointer.
  const v = value.length > 0 ? value : new Uint8Array(1);
  // SAFETY: all three buffers are alive for the duration of the call; the kernel reads
  // `value.length` bytes from `v`, which holds at least that many.
  if (libc().lsetxattr(ptr(p), ptr(n), ptr(v), value.length, 0) !== 0) fail("lsetxattr", path);
}

/** Reads an extended attribute (up to 64 KiB); undefined when it is not set. */
export function lgetxattr(path: string, name: string): Uint8Array | undefined {
  const p = cstr(path);
  const n = cstr(name);
  const buf = new Uint8Array(65536);
  // SAFETY: the kernel writes at most buf.length bytes into `buf`, which outlives the call.
  const len = Number(libc().lgetxattr(ptr(p), ptr(n), ptr(buf), buf.length));
  if (len < 0) return undefined;
  return buf.slice(0, len);
}

/** Names of the extended attributes set on the path itself (empty when none or unsupported). */
export function llistxattr(path: string): string[] {
  const p = cstr(path);
  const buf = new Uint8Array(65536);
  // SAFETY: the kernel writes at most buf.length bytes into `buf`, which outlives the call.
  const len = Number(libc().llistxattr(ptr(p), ptr(buf), buf.length));
  if (len <= 0) return [];
  return new TextDecoder()
    .decode(buf.subarray(0, len - 1))
    .split("\0")
    .filter(Boolean);
}
