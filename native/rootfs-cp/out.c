/* Output helpers of arcbox-rootfs-cp: buffered stdout, the error answer, JSON, paths. */
#include "rootfs-cp.h"
#include <limits.h>
#include <stdarg.h>

static char obuf[1 << 16];
static size_t olen;

void out_flush(void) {
  size_t off = 0;
  while (off < olen) {
    ssize_t n = write(1, obuf + off, olen - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3); /* the reader went away (client disconnected): nothing to report to */
    off += (size_t)n;
  }
  olen = 0;
}

void out_write(const void *p, size_t n) {
  const char *c = p;
  while (n) {
    if (olen == sizeof obuf) out_flush();
    size_t k = sizeof obuf - olen < n ? sizeof obuf - olen : n;
    memcpy(obuf + olen, c, k);
    olen += k, c += k, n -= k;
  }
}

void json_escape(char *dst, size_t cap, const char *s) {
  size_t o = strlen(dst);
  for (; *s && o + 8 < cap; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') dst[o++] = '\\', dst[o++] = (char)c;
    else if (c < 0x20) o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", c);
    else dst[o++] = (char)c;
  }
  dst[o] = 0;
}

void fail(const char *kind, const char *fmt, ...) {
  char msg[PATH_MAX * 2], line[PATH_MAX * 4 + 64];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(line, sizeof line, "{\"error\":\"%s\",\"message\":\"", kind);
  json_escape(line, sizeof line - 4, msg);
  strcat(line, "\"}\n");
  out_write(line, strlen(line));
  out_flush();
  exit(1);
}

void clean_path(const char *path, char *out) {
  /* An element stack: `..` pops a real element, is dropped at the root of an absolute
   * path, and is kept at the front of a relative one. */
  const char *seg[PATH_MAX / 2];
  size_t len[PATH_MAX / 2], depth = 0;
  int rooted = path[0] == '/';
  for (const char *p = path; *p;) {
    while (*p == '/') p++;
    const char *e = p;
    while (*e && *e != '/') e++;
    size_t n = (size_t)(e - p);
    if (n == 0 || (n == 1 && p[0] == '.')) {
    } else if (n == 2 && p[0] == '.' && p[1] == '.') {
      if (depth && !(len[depth - 1] == 2 && memcmp(seg[depth - 1], "..", 2) == 0)) depth--;
      else if (!rooted && depth < PATH_MAX / 2) seg[depth] = p, len[depth++] = n;
    } else if (depth < PATH_MAX / 2) {
      seg[depth] = p, len[depth++] = n;
    }
    p = e;
  }
  size_t o = 0;
  if (rooted) out[o++] = '/';
  for (size_t i = 0; i < depth && o + len[i] + 2 < PATH_MAX; i++) {
    if (i) out[o++] = '/';
    memcpy(out + o, seg[i], len[i]);
    o += len[i];
  }
  if (o == 0) out[o++] = '.';
  out[o] = 0;
}
