/* arcbox-shim, the json-file log: one {"log","stream","time"} object per line, escaped like Go.
 * Records of one read are built into one buffer and written with one write(2); they
 * share the timestamp of that read. */
#include "shim.h"

int log_fd = -1;
static struct buf line[3]; /* partial log lines per stream (1 stdout, 2 stderr) */

static struct buf log_batch;
static char log_ts[64];

static int needs_escape(unsigned char c) {
  return c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&';
}

static void log_record(int stream, const char *p, size_t n) {
  struct buf *rec = &log_batch;
  buf_append(rec, "{\"log\":\"", 8);
  size_t run = 0; /* start of the current run of bytes copied as they are */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (!needs_escape(c)) continue;
    buf_append(rec, p + run, i - run);
    run = i + 1;
    char esc[8];
    if (c == '"') buf_append(rec, "\\\"", 2);
    else if (c == '\\') buf_append(rec, "\\\\", 2);
    else if (c == '\n') buf_append(rec, "\\n", 2);
    else if (c == '\r') buf_append(rec, "\\r", 2);
    else if (c == '\t') buf_append(rec, "\\t", 2);
    else {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      buf_append(rec, esc, 6);
    }
  }
  buf_append(rec, p + run, n - run);
  const char *name = stream == 2 ? "stderr" : "stdout";
  buf_append(rec, "\",\"stream\":\"", 12);
  buf_append(rec, name, strlen(name));
  buf_append(rec, "\",\"time\":\"", 10);
  buf_append(rec, log_ts, strlen(log_ts));
  buf_append(rec, "\"}\n", 3);
}

static void log_write_batch(void) {
  if (log_fd >= 0 && log_batch.len) write_all(log_fd, log_batch.data, log_batch.len);
  log_batch.len = 0;
}

/* Splits output into lines (Docker logs one record per line; long lines in parts). */
void log_output(int stream, const char *p, size_t n) {
  if (log_fd < 0) return;
  struct buf *b = &line[stream];
  rfc3339_now(log_ts, sizeof log_ts, NULL);
  while (n > 0) {
    const char *nl = memchr(p, '\n', n);
    size_t take = nl ? (size_t)(nl - p) + 1 : n;
    if (b->len + take > LINE_MAX_BYTES) take = LINE_MAX_BYTES - b->len;
    int complete = (take > 0 && p[take - 1] == '\n') || b->len + take >= LINE_MAX_BYTES;
    if (complete && b->len == 0) {
      log_record(stream, p, take); /* the common case: a whole line, no copy */
    } else {
      buf_append(b, p, take);
      if (complete) {
        log_record(stream, b->data, b->len);
        b->len = 0;
      }
    }
    p += take; n -= take;
  }
  log_write_batch();
}

void log_flush(void) {
  if (log_fd < 0) return;
  rfc3339_now(log_ts, sizeof log_ts, NULL);
  for (int s = 1; s <= 2; s++)
    if (line[s].len) { log_record(s, line[s].data, line[s].len); line[s].len = 0; }
  log_write_batch();
}

