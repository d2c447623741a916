/* arcbox-shim: growable buffers and small syscall helpers. */
#include "shim.h"

/* Makes room for `n` more bytes. */
void buf_reserve(struct buf *b, size_t n) {
  if (b->len + n <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + n) cap *= 2;
  char *d = realloc(b->data, cap);
  if (!d) { perror("realloc"); exit(70); }
  b->data = d; b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n) {
  buf_reserve(b, n);
  memcpy(b->data + b->len, p, n);
  b->len += n;
}
void buf_consume(struct buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

void die(const char *what) { fprintf(stderr, "arcbox-shim: %s: %s\n", what, strerror(errno)); exit(1); }

void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

int unix_listen(const char *path) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof a.sun_path) { errno = ENAMETOOLONG; die(path); }
  strcpy(a.sun_path, path);
  unlink(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0) die(path);
  chmod(path, 0600);
  return fd;
}

void rfc3339_now(char *out, size_t n, long long *unix_nano) {
  struct timespec ts; struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + k, n - k, ".%09ldZ", ts.tv_nsec);
  if (unix_nano) *unix_nano = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

