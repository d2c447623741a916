/*
 * arcbox-rootfs-cp: docker cp's filesystem work (stat, tar out, tar in) done from
 * inside a container's root. main.c enters the root (chroot, so the kernel resolves
 * every symlink and `..` inside it) and answers; tar-create.c writes an archive;
 * tar-extract.c unpacks one with Docker's rules; out.c holds the output helpers.
 */
#ifndef ARCBOX_ROOTFS_CP_H
#define ARCBOX_ROOTFS_CP_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BLOCK 512

/* out.c: buffered stdout (the JSON answer line, then a tar stream). */
void out_write(const void *p, size_t n);
void out_flush(void);
/* Prints {"error":kind,"message":...} as the answer line and exits 1. */
__attribute__((noreturn)) void fail(const char *kind, const char *fmt, ...);
/* Appends `s` to `dst` (capacity `cap`) as a JSON string body (no quotes). */
void json_escape(char *dst, size_t cap, const char *s);
/* Go's filepath.Clean of `path`, into `out` (capacity PATH_MAX). */
void clean_path(const char *path, char *out);

/* tar-create.c: the archive of `name` in `dirfd` ("." for dirfd itself; a dir's
 * contents follow), its entries named `rebase` (+ "/..." below a directory); with
 * `one_fs`, directories of other filesystems are archived empty. */
void tar_create(int dirfd, const char *name, const char *rebase, int one_fs);
/* tar-create.c: the answer line, then the overlay upper dir `upper` as a layer tar
 * (docker commit): relative names, whiteouts as ".wh.NAME", opaque dirs marked. */
void tar_layer(const char *upper);

/* tar-extract.c: unpacks stdin into the directory `dest` (an absolute, resolved path). */
struct extract_opts { int no_overwrite_dir_non_dir; int copy_uidgid; };
void tar_extract(const char *dest, const struct extract_opts *o);

#endif
