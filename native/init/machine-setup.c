/*
 * The part of a machine's stage 2 that stands before the host is answered, done by PID 1
 * before it starts stage2.sh: devpts, /dev/shm, /run, /tmp and cgroup2; the
 * /dev/virtio-ports/<name> links (no udev); the boot trace; the idle-wake-up sysctls;
 * the hostname; loopback up; the machine's VirtioFS shares (arcbox.mounts=); the agent's
 * FIFO pair; then the serial relay, which answers the host (native/serial/).
 *
 * Why C: each busybox command stage 2 ran for these was a fork and an exec of busybox,
 * ~50 ms apiece in a TCG guest, and they all stood between the kernel and the first
 * exec a machine answers (guest/README.md, "Boot trace and start-up costs").
 * Every step reports its failure on the console and the boot goes on, as the shell's did.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "machine-setup.h"
#include "../serial/relay.h"

static void warn(const char *what, const char *path) { fprintf(stderr, "arcbox-init: %s %s: %s\n", what, path, strerror(errno)); }

static void mnt(const char *source, const char *dir, unsigned long flags, const char *opts) {
  mkdir(dir, 0755);
  if (mount(source, dir, "tmpfs", flags, opts) < 0) warn("mount", dir);
}

/* Reads a small file into buf (NUL-terminated, trailing newline cut); -1 if unreadable. */
static int read_small(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, cap - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  buf[strcspn(buf, "\n")] = 0;
  return 0;
}

static void write_small(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return; /* an older kernel without the knob */
  if (write(fd, text, strlen(text)) < 0) warn("write", path);
  close(fd);
}

/* Devices named as udev would (/dev/virtio-ports/<name> -> ../vportNpM). */
static void link_virtio_ports(void) {
  mkdir("/dev/virtio-ports", 0755);
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char path[512], name[256], link[512], target[300];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", de->d_name);
    if (read_small(path, name, sizeof name) < 0 || !*name || strchr(name, '/')) continue;
    snprintf(link, sizeof link, "/dev/virtio-ports/%s", name);
    snprintf(target, sizeof target, "../%s", de->d_name);
    unlink(link);
    if (symlink(target, link) < 0) warn("symlink", link);
  }
  closedir(d);
}

/* The marks /init handed over in ARCBOX_BOOT_TRACE ("<uptime> <phase>;..."), then ours. */
static void boot_trace(void) {
  mkdir("/run/arcbox", 0755);
  FILE *f = fopen("/run/arcbox/boot-trace", "we");
  if (!f) { warn("open", "/run/arcbox/boot-trace"); return; }
  const char *marks = getenv("ARCBOX_BOOT_TRACE");
  for (const char *m = marks ? marks : ""; *m;) {
    size_t n = strcspn(m, ";");
    if (n) fprintf(f, "%.*s\n", (int)n, m);
    m += n + (m[n] == ';');
  }
  char up[64];
  if (read_small("/proc/uptime", up, sizeof up) == 0) {
    up[strcspn(up, " ")] = 0;
    fprintf(f, "%s stage2\n", up);
  }
  fclose(f);
  unsetenv("ARCBOX_BOOT_TRACE");
  setenv("ARCBOX_BOOT_TRACE_FILE", "/run/arcbox/boot-trace", 1);
}

/* arcbox.name= on the kernel command line. */
static void set_hostname(void) {
  char cmdline[4096];
  if (read_small("/proc/cmdline", cmdline, sizeof cmdline) < 0) return;
  for (char *w = strtok(cmdline, " "); w; w = strtok(NULL, " ")) {
    if (strncmp(w, "arcbox.name=", 12) || !w[12]) continue;
    if (sethostname(w + 12, strlen(w + 12)) < 0) warn("sethostname", w + 12);
  }
}

static void loopback_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) { warn("socket", "lo"); return; }
  struct ifreq ifr = { 0 };
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) warn("SIOCGIFFLAGS", "lo");
  else {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) warn("SIOCSIFFLAGS", "lo");
  }
  close(s);
}

/* mkdir -p */
static int make_dirs(const char *path, mode_t mode) {
  char p[4096];
  if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) { errno = ENAMETOOLONG; return -1; }
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    if (mkdir(p, mode) < 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  return mkdir(p, mode) < 0 && errno != EEXIST ? -1 : 0;
}

static void load_module(const char *name) {
  char path[256];
  snprintf(path, sizeof path, "/opt/arcbox/modules/%s.ko", name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  /* SAFETY: finit_module on our own module file; EEXIST (loaded already, or being loaded
   * by stage 2's background job, which the kernel waits for) is what we want anyway. */
  if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST) warn("load module", name);
  close(fd);
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/*
 * arcbox.mounts=TAG:DIR[:ro],... in a copy of the kernel command line
 * (guest/boot/mounts-arg.ts: DIR's bytes outside [A-Za-z0-9/._-] as %XX), decoded, in
 * order (parents are listed before children).
 */
void for_each_share(char *cmdline, void (*fn)(const char *tag, const char *dir, int ro)) {
  char *list = NULL, *save;
  for (char *w = strtok_r(cmdline, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
    if (!strncmp(w, "arcbox.mounts=", 14)) list = w + 14;
  if (!list || !*list) return;
  for (char *entry = strtok_r(list, ",", &save); entry; entry = strtok_r(NULL, ",", &save)) {
    char *tag = entry, *enc = strchr(entry, ':');
    if (!enc) continue;
    *enc++ = 0;
    char *opt = strchr(enc, ':');
    if (opt) *opt++ = 0;
    char dir[4096];
    size_t k = 0;
    for (const char *c = enc; *c && k + 1 < sizeof dir; c++) {
      int hi, lo;
      if (*c == '%' && (hi = hexval(c[1])) >= 0 && (lo = hexval(c[2])) >= 0) { dir[k++] = (char)(hi << 4 | lo); c += 2; }
      else dir[k++] = *c;
    }
    dir[k] = 0;
    fn(tag, dir, opt && !strcmp(opt, "ro"));
  }
}

/* Mounts a share at its directory, made if missing. One that does not mount is
 * reported on the console and the machine boots on without it. */
static void mount_share(const char *tag, const char *dir, int ro) {
  static int loaded;
  if (!loaded++) {
    load_module("fuse");
    load_module("virtiofs");
  }
  if (make_dirs(dir, 0755) < 0) { fprintf(stderr, "arcbox: cannot make %s for share %s: %s\n", dir, tag, strerror(errno)); return; }
  /* The device may still be probing right after the module loaded: retry briefly. */
  for (int n = 0; mount(tag, dir, "virtiofs", ro ? MS_RDONLY : 0, NULL) < 0;) {
    if (++n >= 20) { fprintf(stderr, "arcbox: cannot mount share %s at %s: %s\n", tag, dir, strerror(errno)); return; }
    usleep(100000);
  }
}

static void mount_shares(void) {
  char cmdline[8192];
  if (read_small("/proc/cmdline", cmdline, sizeof cmdline) == 0) for_each_share(cmdline, mount_share);
}

/* The agent's FIFO pair, which the relay opens for each host session. */
static void make_agent_fifos(void) {
  if (make_dirs(AGENT_RUN_DIR, 0700) < 0) warn("mkdir", AGENT_RUN_DIR);
  static const char *const fifos[] = { AGENT_FIFO_IN, AGENT_FIFO_OUT };
  for (int i = 0; i < 2; i++) {
    struct stat st;
    if (lstat(fifos[i], &st) == 0 && S_ISFIFO(st.st_mode)) continue;
    unlink(fifos[i]);
    if (mkfifo(fifos[i], 0600) < 0) warn("mkfifo", fifos[i]);
  }
}

pid_t start_relay(void) {
  pid_t pid = fork();
  if (pid < 0) { warn("fork", "serial relay"); return -1; }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Ahead of stage 2 and the agent's start on the vCPU: the relay is what the host
     * waits for. Its machine execs run at nice 0 again (mexec.c). */
    if (setpriority(PRIO_PROCESS, 0, -10) < 0) warn("setpriority", "serial relay");
    /* The relay's code is linked in: no exec, so nothing more to read from the tools
     * image (cold under TCG) before the host is answered. */
    prctl(PR_SET_NAME, "serial-relay"); /* what ps and pidof show */
    char *argv[] = { "arcbox-serial-relay", AGENT_PORT, AGENT_FIFO_IN, AGENT_FIFO_OUT, NULL };
    _exit(relay_main(4, argv));
  }
  return pid;
}

void machine_setup(void) {
  mkdir("/dev/pts", 0755);
  if (mount("devpts", "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0) warn("mount", "/dev/pts");
  struct stat st;
  if (lstat("/dev/ptmx", &st) < 0 && symlink("pts/ptmx", "/dev/ptmx") < 0) warn("symlink", "/dev/ptmx");
  mnt("shm", "/dev/shm", MS_NOSUID | MS_NODEV, "mode=1777");
  mnt("run", "/run", MS_NOSUID | MS_NODEV, "mode=0755");
  mnt("tmp", "/tmp", MS_NOSUID | MS_NODEV, "mode=1777");
  boot_trace();
  mkdir("/sys/fs/cgroup", 0755);
  /* SAFETY: a kernel without cgroup2 leaves the machine without it, as before (silent). */
  (void)mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL);
  link_virtio_ports();
  /* Idle wake-ups: no proactive compaction (kcompactd would wake twice a second) and the
   * per-CPU VM counters folded every 10 s instead of every second. Free page reporting
   * (virtio_balloon) does not depend on either. */
  write_small("/proc/sys/vm/compaction_proactiveness", "0");
  write_small("/proc/sys/vm/stat_interval", "10");
  set_hostname();
  loopback_up();
  mount_shares();
  make_agent_fifos();
}
