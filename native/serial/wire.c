/*
 * Byte buffers and the two small codecs of arcbox-serial-relay: msgpack (the agent
 * protocol's envelope, guest/protocol/frames.ts) and protobuf (the bodies of the three
 * machine-exec methods the relay answers itself). Only what those frames use; readers
 * are bounds-checked against the frame, which comes from the host.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay.h"

void buf_append(struct buf *b, const void *p, size_t n) {
  if (!n) return;
  if (b->off + b->len + n > b->cap && b->off) {
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { perror("arcbox-serial-relay: realloc"); exit(1); }
    b->data = d; b->cap = cap;
  }
  memcpy(b->data + b->off + b->len, p, n);
  b->len += n;
}

void buf_consume(struct buf *b, size_t n) {
  b->off += n;
  b->len -= n;
  if (!b->len) b->off = 0;
}

void buf_clear(struct buf *b) { b->off = b->len = 0; }

/* ---- msgpack, reading ---- */

static int need(struct mp *m, size_t n) { return (size_t)(m->end - m->p) >= n ? 0 : -1; }

static uint64_t be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = v << 8 | p[i];
  return v;
}

int mp_map(struct mp *m, uint32_t *n) {
  if (need(m, 1)) return -1;
  unsigned char t = *m->p;
  if ((t & 0xf0) == 0x80) { *n = t & 0x0f; m->p++; return 0; }
  int w = t == 0xde ? 2 : t == 0xdf ? 4 : 0;
  if (!w || need(m, 1 + (size_t)w)) return -1;
  *n = (uint32_t)be(m->p + 1, w);
  m->p += 1 + w;
  return 0;
}

/* A str (raw = 0) or bin (raw = 1) item's length and header size. */
static int sized(struct mp *m, int raw, uint32_t *n) {
  if (need(m, 1)) return -1;
  unsigned char t = *m->p;
  int w;
  if (!raw && (t & 0xe0) == 0xa0) { *n = t & 0x1f; w = 0; }
  else if (t == (raw ? 0xc4 : 0xd9)) w = 1;
  else if (t == (raw ? 0xc5 : 0xda)) w = 2;
  else if (t == (raw ? 0xc6 : 0xdb)) w = 4;
  else return -1;
  if (need(m, 1 + (size_t)w)) return -1;
  if (w) *n = (uint32_t)be(m->p + 1, w);
  if (need(m, 1 + (size_t)w + *n)) return -1;
  m->p += 1 + w;
  return 0;
}

int mp_str(struct mp *m, const char **s, uint32_t *n) {
  if (sized(m, 0, n)) return -1;
  *s = (const char *)m->p;
  m->p += *n;
  return 0;
}

int mp_bin(struct mp *m, const unsigned char **s, uint32_t *n) {
  if (sized(m, 1, n)) return -1;
  *s = m->p;
  m->p += *n;
  return 0;
}

int mp_uint(struct mp *m, uint64_t *v) {
  if (need(m, 1)) return -1;
  unsigned char t = *m->p;
  if (t < 0x80) { *v = t; m->p++; return 0; }
  int w = t == 0xcc ? 1 : t == 0xcd ? 2 : t == 0xce ? 4 : t == 0xcf ? 8 : 0;
  if (!w || need(m, 1 + (size_t)w)) return -1;
  *v = be(m->p + 1, w);
  m->p += 1 + w;
  return 0;
}

int mp_bool(struct mp *m, int *v) {
  if (need(m, 1) || (*m->p != 0xc2 && *m->p != 0xc3)) return -1;
  *v = *m->p++ == 0xc3;
  return 0;
}

int mp_skip(struct mp *m) {
  if (need(m, 1)) return -1;
  unsigned char t = *m->p;
  uint32_t n;
  const char *s;
  const unsigned char *u;
  if (t < 0x80 || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) { m->p++; return 0; }
  if ((t & 0xe0) == 0xa0 || (t >= 0xd9 && t <= 0xdb)) return mp_str(m, &s, &n);
  if (t >= 0xc4 && t <= 0xc6) return mp_bin(m, &u, &n);
  if ((t & 0xf0) == 0x80 || t == 0xde || t == 0xdf) {
    if (mp_map(m, &n)) return -1;
    for (uint64_t i = 0; i < 2ull * n; i++) if (mp_skip(m)) return -1;
    return 0;
  }
  if ((t & 0xf0) == 0x90 || t == 0xdc || t == 0xdd) {
    int w = (t & 0xf0) == 0x90 ? 0 : t == 0xdc ? 2 : 4;
    if (need(m, 1 + (size_t)w)) return -1;
    n = w ? (uint32_t)be(m->p + 1, w) : (uint32_t)(t & 0x0f);
    m->p += 1 + w;
    for (uint32_t i = 0; i < n; i++) if (mp_skip(m)) return -1;
    return 0;
  }
  /* Fixed-size scalars: ints, floats, fixext. */
  size_t w;
  switch (t) {
    case 0xcc: case 0xd0: w = 1; break;
    case 0xcd: case 0xd1: w = 2; break;
    case 0xce: case 0xd2: case 0xca: w = 4; break;
    case 0xcf: case 0xd3: case 0xcb: w = 8; break;
    case 0xd4: w = 2; break;
    case 0xd5: w = 3; break;
    case 0xd6: w = 5; break;
    case 0xd7: w = 9; break;
    case 0xd8: w = 17; break;
    case 0xc7: case 0xc8: case 0xc9: {
      int lw = t == 0xc7 ? 1 : t == 0xc8 ? 2 : 4;
      if (need(m, 1 + (size_t)lw)) return -1;
      w = (size_t)lw + 1 + be(m->p + 1, lw);
      break;
    }
    default: return -1;
  }
  if (need(m, 1 + w)) return -1;
  m->p += 1 + w;
  return 0;
}

/* ---- msgpack, writing ---- */

static void put_be(struct buf *b, unsigned char tag, uint64_t v, int w) {
  unsigned char h[9];
  h[0] = tag;
  for (int i = 0; i < w; i++) h[1 + i] = (unsigned char)(v >> (8 * (w - 1 - i)));
  buf_append(b, h, 1 + (size_t)w);
}

void mpw_map(struct buf *b, uint32_t n) {
  if (n < 16) { unsigned char t = (unsigned char)(0x80 | n); buf_append(b, &t, 1); }
  else put_be(b, 0xde, n, 2);
}

void mpw_str(struct buf *b, const char *s, size_t n) {
  if (n < 32) { unsigned char t = (unsigned char)(0xa0 | n); buf_append(b, &t, 1); }
  else if (n < 256) put_be(b, 0xd9, n, 1);
  else if (n < 65536) put_be(b, 0xda, n, 2);
  else put_be(b, 0xdb, n, 4);
  buf_append(b, s, n);
}

void mpw_cstr(struct buf *b, const char *s) { mpw_str(b, s, strlen(s)); }

void mpw_uint(struct buf *b, uint64_t v) {
  if (v < 128) { unsigned char t = (unsigned char)v; buf_append(b, &t, 1); }
  else if (v < 256) put_be(b, 0xcc, v, 1);
  else if (v < 65536) put_be(b, 0xcd, v, 2);
  else if (v < 4294967296ull) put_be(b, 0xce, v, 4);
  else put_be(b, 0xcf, v, 8);
}

void mpw_bool(struct buf *b, int v) {
  unsigned char t = v ? 0xc3 : 0xc2;
  buf_append(b, &t, 1);
}

void mpw_bin(struct buf *b, const void *p, size_t n) {
  if (n < 256) put_be(b, 0xc4, n, 1);
  else if (n < 65536) put_be(b, 0xc5, n, 2);
  else put_be(b, 0xc6, n, 4);
  buf_append(b, p, n);
}

/* ---- protobuf ---- */

static int varint(struct pb *m, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (m->p >= m->end) return -1;
    unsigned char c = *m->p++;
    *v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) return 0;
  }
  return -1;
}

int pb_next(struct pb *m, uint32_t *field, uint64_t *v, const unsigned char **data, size_t *len) {
  if (m->p >= m->end) return 1;
  uint64_t key;
  if (varint(m, &key)) return -1;
  *field = (uint32_t)(key >> 3);
  *data = NULL;
  *len = 0;
  switch (key & 7) {
    case 0: return varint(m, v);
    case 1: if (m->end - m->p < 8) return -1; m->p += 8; return 0;
    case 5: if (m->end - m->p < 4) return -1; m->p += 4; return 0;
    case 2:
      if (varint(m, v) || *v > (uint64_t)(m->end - m->p)) return -1;
      *data = m->p;
      *len = (size_t)*v;
      m->p += *len;
      return 0;
    default: return -1;
  }
}

static void put_varint(struct buf *b, uint64_t v) {
  unsigned char t[10];
  int n = 0;
  do { t[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
  buf_append(b, t, (size_t)n);
}

void pbw_varint(struct buf *b, uint32_t field, uint64_t v) {
  if (!v) return; /* proto3: defaults are not written */
  put_varint(b, (uint64_t)field << 3);
  put_varint(b, v);
}

void pbw_bytes(struct buf *b, uint32_t field, const void *p, size_t n) {
  if (!n) return;
  put_varint(b, (uint64_t)field << 3 | 2);
  put_varint(b, n);
  buf_append(b, p, n);
}
