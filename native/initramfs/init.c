/*
 * /init of a machine's initramfs, stage 1 of the guest boot (static, the initramfs's only
 * program): mount the kernel filesystems, load the virtio and filesystem modules, mount
 * the machine's root disk (/dev/vda, ext4, rw) and the guest-tools image (/dev/vdb,
 * squashfs) at /opt/arcbox inside it, then switch to that root and run arcbox-init as
 * PID 1 (native/init/), which sets the machine up and starts stage 2.
 *
 * Why C: as a busybox script each step (six insmods, the mounts, switch_root) was a fork
 * and an exec of busybox, ~50 ms apiece in a TCG guest, between the kernel and the host's
 * first answer; and without busybox the initramfs the kernel unpacks is 2 MB smaller.
 *
 * Devices are those qemu gets from vmm (VM-CONTRACT.md). Anything fatal: say why on the
 * console and power off, so vmm sees the machine stop instead of a hung kernel.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define NEWROOT "/newroot"
#define PID1 "/opt/arcbox/native/bin/arcbox-init"

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("arcbox init: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  int fd = open("/proc/sysrq-trigger", O_WRONLY);
  /* SAFETY: an immediate power-off; if sysrq is missing, reboot(2) below does it. */
  if (fd >= 0) (void)!write(fd, "o", 1);
  reboot(RB_POWER_OFF);
  _exit(1);
}

/* Boot trace: "<uptime> <phase>;" marks handed to PID 1 in ARCBOX_BOOT_TRACE, which
 * writes them to /run/arcbox/boot-trace (guest/README.md). */
static char trace[512];
static void mark(const char *phase) {
  char up[64] = "";
  int fd = open("/proc/uptime", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? read(fd, up, sizeof up - 1) : -1;
  if (fd >= 0) close(fd);
  if (n <= 0) return;
  up[n] = 0;
  up[strcspn(up, " ")] = 0;
  size_t len = strlen(trace);
  snprintf(trace + len, sizeof trace - len, "%s %s;", up, phase);
}

static void mount_or_fail(const char *src, const char *dir, const char *type, unsigned long flags, const char *opts) {
  if (mount(src, dir, type, flags, opts) < 0) fail("cannot mount %s on %s: %s", src, dir, strerror(errno));
}

static char *read_file(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 4096, len = 0;
  char *s = malloc(cap);
  for (ssize_t r; s && (r = read(fd, s + len, cap - len - 1)) > 0;) {
    len += (size_t)r;
    if (len + 1 == cap) s = realloc(s, cap *= 2);
  }
  close(fd);
  if (s) s[len] = 0;
  return s;
}

/*
 * Modules in dependency order (build-guest.sh wrote the list). Parameters given on the
 * kernel command line as <module>.<param>=<value> (e.g. virtio_mmio.device=... from
 * qemu's microvm) apply to modules only when we pass them ourselves.
 */
static void load_modules(const char *cmdline) {
  char *order = read_file("/lib/modules/load-order");
  if (!order) fail("no /lib/modules/load-order");
  char *save;
  for (char *ko = strtok_r(order, "\n", &save); ko; ko = strtok_r(NULL, "\n", &save)) {
    char mod[128], params[2048] = "", path[256];
    snprintf(mod, sizeof mod, "%.*s", (int)strcspn(ko, "."), ko);
    size_t mlen = strlen(mod);
    for (const char *w = cmdline; *w;) {
      size_t n = strcspn(w, " \n");
      if (n > mlen + 1 && !strncmp(w, mod, mlen) && w[mlen] == '.' && memchr(w, '=', n)) {
        size_t have = strlen(params);
        snprintf(params + have, sizeof params - have, "%s%.*s", have ? " " : "", (int)(n - mlen - 1), w + mlen + 1);
      }
      w += n;
      while (*w == ' ' || *w == '\n') w++;
    }
    snprintf(path, sizeof path, "/lib/modules/%s", ko);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    /* SAFETY: finit_module on the initramfs's own module file; its errors are reported. */
    if (fd < 0 || syscall(SYS_finit_module, fd, params, 0) < 0) fprintf(stderr, "arcbox init: cannot load %s: %s\n", mod, strerror(errno));
    if (fd >= 0) close(fd);
  }
  free(order);
}

/* virtio-blk probes asynchronously: wait (bounded) for both disks. */
static void wait_for_disks(void) {
  struct stat st;
  for (int n = 0; stat("/dev/vda", &st) < 0 || stat("/dev/vdb", &st) < 0; n++) {
    if (n > 500) fail("no /dev/vda or /dev/vdb after 5 s");
    nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
  }
}

/* Frees the initramfs (its files stay in RAM otherwise), as switch_root does: everything
 * on the root's device, not below other mounts. */
static void delete_tree(int dirfd, dev_t rootdev) {
  DIR *d = fdopendir(dirfd);
  if (!d) { close(dirfd); return; }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    struct stat st;
    if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != rootdev) continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
      if (sub >= 0) delete_tree(sub, rootdev);
      unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
    } else unlinkat(dirfd, de->d_name, 0);
  }
  closedir(d);
}

int main(void) {
  mount_or_fail("proc", "/proc", "proc", 0, NULL);
  mount_or_fail("sysfs", "/sys", "sysfs", 0, NULL);
  mount_or_fail("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mark("init");
  char *cmdline = read_file("/proc/cmdline");
  load_modules(cmdline ? cmdline : "");
  mark("modules");
  wait_for_disks();
  mark("disks");
  // noinit_itable: no ext4lazyinit thread zeroing a fresh disk's inode tables in the
  // background (a minute of writes on a new engine disk, all of it TCG CPU while the
  // machine should idle). The groups stay flagged uninitialised, which the checksums cover.
  mount_or_fail("/dev/vda", NEWROOT, "ext4", MS_NOATIME, "noinit_itable");
  static const char *const dirs[] = { NEWROOT "/opt", NEWROOT "/opt/arcbox", NEWROOT "/proc", NEWROOT "/sys", NEWROOT "/dev", NEWROOT "/run", NEWROOT "/tmp" };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) mkdir(dirs[i], 0755);
  mount_or_fail("/dev/vdb", NEWROOT "/opt/arcbox", "squashfs", MS_RDONLY, NULL);
  char *built = read_file(NEWROOT "/opt/arcbox/kernel-release");
  struct utsname u;
  if (built && uname(&u) == 0) {
    built[strcspn(built, "\n")] = 0;
    if (strcmp(built, u.release)) fprintf(stderr, "arcbox init: tools image built for kernel %s, running %s\n", built, u.release);
  }
  free(built);
  mark("switch_root");
  setenv("ARCBOX_BOOT_TRACE", trace, 1);
  static const char *const moved[] = { "/dev", "/proc", "/sys" };
  for (size_t i = 0; i < 3; i++) {
    char to[64];
    snprintf(to, sizeof to, NEWROOT "%s", moved[i]);
    mount_or_fail(moved[i], to, NULL, MS_MOVE, NULL);
  }
  /* switch_root: free the initramfs, make the new root "/", run PID 1's program there. */
  struct stat root;
  if (chdir(NEWROOT) < 0 || stat("/", &root) < 0) fail("cannot enter %s: %s", NEWROOT, strerror(errno));
  delete_tree(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC), root.st_dev);
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0) fail("cannot switch to the new root: %s", strerror(errno));
  execl(PID1, PID1, "--machine-setup", "/opt/arcbox/bin/busybox", "sh", "/opt/arcbox/boot/stage2.sh", (char *)NULL);
  fail("cannot run %s: %s", PID1, strerror(errno));
}
