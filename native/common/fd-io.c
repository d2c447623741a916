/* Whole writes to a file descriptor (fd-io.h). */
#include <errno.h>
#include <unistd.h>

#include "fd-io.h"

int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    c += w; n -= (size_t)w;
  }
  return 0;
}
