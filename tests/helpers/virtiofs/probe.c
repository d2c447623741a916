/* Static helper for the VirtioFS test guest: the syscalls busybox has no applet for.
 *   probe mmap FILE          maps FILE shared, writes through the mapping, msyncs, and
 *                            checks a read(2) sees the bytes; prints "mmap ok"
 *   probe fsync FILE TEXT    writes TEXT, fsyncs and fdatasyncs
 *   probe setxattr FILE NAME VALUE / getxattr FILE NAME / listxattr FILE / removexattr FILE NAME
 *   probe open FILE FLAGS    FLAGS: r, w, rw, creat; prints the errno name on failure
 *   probe now                CLOCK_MONOTONIC in ns (busybox date has no %N)
 *   probe randread FILE N    N preads of 4 KiB at random aligned offsets; prints "ops/s"
 *   probe smallfiles DIR N   creates N 100-byte files, stats each, unlinks each; prints "ops/s"
 * Exits 1 with "probe: <op>: <strerror>" on failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>

static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static int fail(const char *op) { printf("probe: %s: %s\n", op, strerror(errno)); return 1; }

int main(int argc, char **argv) {
  if (argc == 2 && !strcmp(argv[1], "now")) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); printf("%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec); return 0; }
  if (argc < 3) return 2;
  const char *op = argv[1], *file = argv[2];
  if (!strcmp(op, "mmap")) {
    int fd = open(file, O_RDWR);
    if (fd < 0) return fail("open");
    const char msg[] = "written through mmap";
    if (ftruncate(fd, 4096) < 0) return fail("ftruncate");
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return fail("mmap");
    memcpy(p + 100, msg, sizeof msg);
    if (msync(p, 4096, MS_SYNC) < 0) return fail("msync");
    munmap(p, 4096);
    char buf[sizeof msg];
    if (pread(fd, buf, sizeof buf, 100) != sizeof buf || memcmp(buf, msg, sizeof msg)) { printf("probe: mmap: mismatch\n"); return 1; }
    printf("mmap ok\n");
    return 0;
  }
  if (!strcmp(op, "fsync") && argc >= 4) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fail("open");
    if (write(fd, argv[3], strlen(argv[3])) < 0) return fail("write");
    if (fsync(fd) < 0) return fail("fsync");
    if (fdatasync(fd) < 0) return fail("fdatasync");
    printf("fsync ok\n");
    return close(fd) < 0 ? fail("close") : 0;
  }
  if (!strcmp(op, "setxattr") && argc >= 5) {
    if (setxattr(file, argv[3], argv[4], strlen(argv[4]), 0) < 0) return fail("setxattr");
    printf("setxattr ok\n"); return 0;
  }
  if (!strcmp(op, "getxattr") && argc >= 4) {
    char buf[4096];
    ssize_t n = getxattr(file, argv[3], buf, sizeof buf - 1);
    if (n < 0) return fail("getxattr");
    buf[n] = 0; printf("xattr=%s\n", buf); return 0;
  }
  if (!strcmp(op, "listxattr")) {
    char buf[4096];
    ssize_t n = listxattr(file, buf, sizeof buf);
    if (n < 0) return fail("listxattr");
    for (char *s = buf; s < buf + n; s += strlen(s) + 1) printf("xattr-name=%s\n", s);
    return 0;
  }
  if (!strcmp(op, "removexattr") && argc >= 4) {
    if (removexattr(file, argv[3]) < 0) return fail("removexattr");
    printf("removexattr ok\n"); return 0;
  }
  if (!strcmp(op, "open") && argc >= 4) {
    int fl = !strcmp(argv[3], "w") ? O_WRONLY : !strcmp(argv[3], "rw") ? O_RDWR : !strcmp(argv[3], "creat") ? O_WRONLY | O_CREAT : O_RDONLY;
    int fd = open(file, fl, 0644);
    if (fd < 0) return fail("open");
    printf("open ok\n"); close(fd); return 0;
  }
  if (!strcmp(op, "randread") && argc >= 4) {
    int fd = open(file, O_RDONLY);
    if (fd < 0) return fail("open");
    struct stat st;
    fstat(fd, &st);
    long n = atol(argv[3]), blocks = st.st_size / 4096;
    char buf[4096];
    unsigned seed = 12345;
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      if (pread(fd, buf, 4096, (off_t)((seed >> 4) % blocks) * 4096) != 4096) return fail("pread");
    }
    printf("%.1f\n", n / (now_s() - t0));
    return 0;
  }
  if (!strcmp(op, "smallfiles") && argc >= 4) {
    long n = atol(argv[3]);
    char name[4096], data[100];
    memset(data, 'x', sizeof data);
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "%s/f%ld", file, i);
      int fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (fd < 0) return fail("create");
      if (write(fd, data, sizeof data) != sizeof data) return fail("write");
      close(fd);
    }
    struct stat st;
    for (long i = 0; i < n; i++) { snprintf(name, sizeof name, "%s/f%ld", file, i); if (stat(name, &st) < 0) return fail("stat"); }
    for (long i = 0; i < n; i++) { snprintf(name, sizeof name, "%s/f%ld", file, i); if (unlink(name) < 0) return fail("unlink"); }
    printf("%.1f\n", 3 * n / (now_s() - t0));
    return 0;
  }
  return 2;
}
