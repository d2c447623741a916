/* arcbox-virtiofsd: serves one host directory to one VM as a vhost-user-fs device.
 * usage: arcbox-virtiofsd --socket PATH --shared-dir DIR [--read-only]
 *                         [--cache auto|always|never] [--threads N]
 *                         [--stats FILE] [--watch-socket PATH]
 * Listens on PATH (mode 0600, appears once listening), serves one front-end connection at a time; when
 * qemu hangs up the device state is reset and the next connection is accepted. */
#include "vfsd.h"
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

struct config cfg = { .cache = CACHE_AUTO, .threads = 4 };
static struct stats local_stats;
struct stats *stats = &local_stats;
void vhost_serve(int sock);

void vfsd_log(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "arcbox-virtiofsd: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

size_t iov_copy_from(const struct iovec *iov, int n, size_t skip, void *dst, size_t len) {
  size_t done = 0;
  for (int i = 0; i < n && done < len; i++) {
    if (skip >= iov[i].iov_len) { skip -= iov[i].iov_len; continue; }
    size_t k = iov[i].iov_len - skip;
    if (k > len - done) k = len - done;
    memcpy((char *)dst + done, (char *)iov[i].iov_base + skip, k);
    done += k; skip = 0;
  }
  return done;
}
size_t iov_copy_to(const struct iovec *iov, int n, size_t skip, const void *src, size_t len) {
  size_t done = 0;
  for (int i = 0; i < n && done < len; i++) {
    if (skip >= iov[i].iov_len) { skip -= iov[i].iov_len; continue; }
    size_t k = iov[i].iov_len - skip;
    if (k > len - done) k = len - done;
    memcpy((char *)iov[i].iov_base + skip, (const char *)src + done, k);
    done += k; skip = 0;
  }
  return done;
}
int iov_slice(const struct iovec *iov, int n, size_t skip, size_t len, struct iovec *out, int max) {
  int k = 0;
  for (int i = 0; i < n && len > 0 && k < max; i++) {
    if (skip >= iov[i].iov_len) { skip -= iov[i].iov_len; continue; }
    size_t l = iov[i].iov_len - skip;
    if (l > len) l = len;
    out[k].iov_base = (char *)iov[i].iov_base + skip; out[k].iov_len = l;
    k++; len -= l; skip = 0;
  }
  return k;
}

/* --watch-socket: a supervisor that did not spawn us (fsd after a restart) connects here
 * and learns of our exit from the connection closing. We keep only the latest one. */
static const char *watch_path;
static void *watch_thread(void *arg) {
  int ls = (int)(intptr_t)arg, held = -1;
  for (;;) {
    int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) { if (errno == EINTR || errno == ECONNABORTED) continue; return NULL; }
    if (held >= 0) close(held);
    held = c;
  }
}
static int listen_at(const char *path, int backlog) {
  int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  /* Bind under a temporary name and rename once listening, so the path appears only when
   * a connect() can succeed (fsd waits for it to exist). */
  char tmp[sizeof addr.sun_path + 8];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  if (strlen(tmp) >= sizeof addr.sun_path) { vfsd_log("socket path too long: %s", path); return -1; }
  strcpy(addr.sun_path, tmp);
  unlink(tmp);
  mode_t old = umask(077);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, backlog) < 0 || rename(tmp, path) < 0) {
    vfsd_log("listen %s: %s", path, strerror(errno)); umask(old); return -1;
  }
  umask(old);
  return ls;
}

static void map_stats(void) {
  if (!cfg.stats_path) return;
  int fd = open(cfg.stats_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || ftruncate(fd, sizeof(struct stats)) < 0) { vfsd_log("stats %s: %s", cfg.stats_path, strerror(errno)); exit(1); }
  void *p = mmap(NULL, sizeof(struct stats), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) { vfsd_log("mmap stats: %s", strerror(errno)); exit(1); }
  stats = p;
  stats->version = 1;
  __atomic_store_n(&stats->magic, STATS_MAGIC, __ATOMIC_RELEASE);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
    { "socket", required_argument, 0, 's' }, { "shared-dir", required_argument, 0, 'd' },
    { "read-only", no_argument, 0, 'r' }, { "cache", required_argument, 0, 'c' },
    { "stats", required_argument, 0, 'm' }, { "watch-socket", required_argument, 0, 'w' },
    { "threads", required_argument, 0, 't' }, { 0, 0, 0, 0 } };
  int o;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
    case 's': cfg.socket_path = optarg; break;
    case 'd': cfg.shared_dir = optarg; break;
    case 'r': cfg.read_only = true; break;
    case 'm': cfg.stats_path = optarg; break;
    case 'w': watch_path = optarg; break;
    case 't': {
      char *end;
      long n = strtol(optarg, &end, 10);
      if (*end || n < 0 || n > MAX_THREADS) { vfsd_log("--threads must be 0..%d", MAX_THREADS); return 2; }
      cfg.threads = (int)n;
      break;
    }
    case 'c':
      if (!strcmp(optarg, "auto")) cfg.cache = CACHE_AUTO;
      else if (!strcmp(optarg, "always")) cfg.cache = CACHE_ALWAYS;
      else if (!strcmp(optarg, "never")) cfg.cache = CACHE_NEVER;
      else { vfsd_log("--cache must be auto, always or never"); return 2; }
      break;
    default: return 2;
    }
  }
  if (!cfg.socket_path || !cfg.shared_dir) {
    fprintf(stderr, "usage: arcbox-virtiofsd --socket PATH --shared-dir DIR [--read-only] [--cache auto|always|never] [--threads N] [--stats FILE] [--watch-socket PATH]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  umask(0); /* the guest already applied its umask to the modes it sends */
  map_stats();
  fuse_init_fs();

  if (watch_path) {
    int ws = listen_at(watch_path, 4);
    if (ws < 0) return 1;
    pthread_t t;
    pthread_create(&t, NULL, watch_thread, (void *)(intptr_t)ws);
  }
  int ls = listen_at(cfg.socket_path, 1);
  if (ls < 0) return 1;
  vfsd_log("serving %s%s on %s", cfg.shared_dir, cfg.read_only ? " (read-only)" : "", cfg.socket_path);
  for (;;) {
    int s = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) { if (errno == EINTR) continue; vfsd_log("accept: %s", strerror(errno)); return 1; }
    stat_set(ST_CONNECTED, 1);
    vhost_serve(s);
    close(s);
    fuse_reset();
    stat_set(ST_CONNECTED, 0);
    vfsd_log("front-end disconnected");
  }
}
