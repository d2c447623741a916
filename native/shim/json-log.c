/* arcbox-shim, the json-file log: one {"log","stream","time"} object per line, escaped like Go.
 * Records of one read are built into one buffer and written with one write(2); they
 * share the timestamp of that read.
 *
 * Built for a slow CPU (the engine machine under TCG, where every guest instruction is
 * emulated): each record is written straight into the batch (room for the worst case is
 * reserved once), escapes come from tables (a snprintf per escaped byte made NUL output,
 * 6 log bytes each, ~0.3 MB/s), and the record's tail (stream and time) is formatted once
 * per read, its date part once per second. */
#include "shim.h"

int log_fd = -1;
static struct buf line[3]; /* partial log lines per stream (1 stdout, 2 stderr) */

static struct buf log_batch;
/* `","stream":"stdout","time":"2006-01-02T15:04:05.999999999Z"}\n` per stream, for this read. */
static char tail[3][96];
static size_t tail_len[3];
static time_t tail_sec = -1;
static char tail_date[32]; /* "2006-01-02T15:04:05" of tail_sec */

/* How each byte is written: 0 as it is, 1 a two-byte escape (esc2), 2 as \u00XX. */
static unsigned char esc_kind[256];
static char esc2[256];

static void init_tables(void) {
  static int done;
  if (done) return;
  done = 1;
  for (int c = 0; c < 0x20; c++) esc_kind[c] = 2;
  const char *pairs = "\"\"\\\\\nn\rr\tt";
  for (const char *s = pairs; *s; s += 2) { esc_kind[(unsigned char)s[0]] = 1; esc2[(unsigned char)s[0]] = s[1]; }
  esc_kind['<'] = esc_kind['>'] = esc_kind['&'] = 2; /* Go's json escapes HTML characters */
}

static void format_tails(void) {
  struct timespec ts; struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != tail_sec) {
    gmtime_r(&ts.tv_sec, &tm);
    strftime(tail_date, sizeof tail_date, "%Y-%m-%dT%H:%M:%S", &tm);
    tail_sec = ts.tv_sec;
  }
  for (int s = 1; s <= 2; s++)
    tail_len[s] = (size_t)snprintf(tail[s], sizeof tail[s], "\",\"stream\":\"%s\",\"time\":\"%s.%09ldZ\"}\n",
                                   s == 2 ? "stderr" : "stdout", tail_date, ts.tv_nsec);
}

static void log_record(int stream, const char *p, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(&log_batch, 8 + 6 * n + tail_len[stream]);
  char *o = log_batch.data + log_batch.len;
  memcpy(o, "{\"log\":\"", 8);
  o += 8;
  size_t run = 0; /* start of the current run of bytes copied as they are */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    unsigned char kind = esc_kind[c];
    if (!kind) continue;
    memcpy(o, p + run, i - run);
    o += i - run;
    run = i + 1;
    if (kind == 1) { o[0] = '\\'; o[1] = esc2[c]; o += 2; }
    else { o[0] = '\\'; o[1] = 'u'; o[2] = '0'; o[3] = '0'; o[4] = hex[c >> 4]; o[5] = hex[c & 15]; o += 6; }
  }
  memcpy(o, p + run, n - run);
  o += n - run;
  memcpy(o, tail[stream], tail_len[stream]);
  o += tail_len[stream];
  log_batch.len = (size_t)(o - log_batch.data);
}

static void log_write_batch(void) {
  if (log_fd >= 0 && log_batch.len) write_all(log_fd, log_batch.data, log_batch.len);
  log_batch.len = 0;
}

/* Splits output into lines (Docker logs one record per line; long lines in parts). */
void log_output(int stream, const char *p, size_t n) {
  if (log_fd < 0) return;
  init_tables();
  struct buf *b = &line[stream];
  format_tails();
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
  init_tables();
  format_tails();
  for (int s = 1; s <= 2; s++)
    if (line[s].len) { log_record(s, line[s].data, line[s].len); line[s].len = 0; }
  log_write_batch();
}
