/*
 * Shared pieces of arcbox-serial-relay: byte buffers, the small msgpack and protobuf
 * codecs the relay needs to route frames and to answer machine execs itself
 * (guest/README.md, "The relay's own machine execs"), and the interface between the
 * relay's loop and its machine execs (mexec.c).
 */
#ifndef ARCBOX_RELAY_H
#define ARCBOX_RELAY_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes waiting are data[off, off + len). Consuming moves `off` only: a port write takes
 * at most 32 KiB, and moving the rest down after each one copied the buffer over and over
 * (every copy is slow in a TCG guest). The bytes move down only when room is needed. */
struct buf { char *data; size_t off, len, cap; };
void buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_clear(struct buf *b);

/* msgpack, reading: each call consumes one item and returns 0, or -1 when the bytes end
 * first or the item has another type. */
struct mp { const unsigned char *p, *end; };
int mp_map(struct mp *m, uint32_t *n);
int mp_str(struct mp *m, const char **s, uint32_t *n);
int mp_bin(struct mp *m, const unsigned char **s, uint32_t *n);
int mp_uint(struct mp *m, uint64_t *v);
int mp_bool(struct mp *m, int *v);
int mp_skip(struct mp *m);
/* msgpack, writing */
void mpw_map(struct buf *b, uint32_t n);
void mpw_str(struct buf *b, const char *s, size_t n);
void mpw_cstr(struct buf *b, const char *s);
void mpw_uint(struct buf *b, uint64_t v);
void mpw_bool(struct buf *b, int v);
void mpw_bin(struct buf *b, const void *p, size_t n);

/* protobuf, reading: the next field (0), the end (1) or a malformed message (-1).
 * Varints land in *v; length-delimited fields in *data and *len. */
struct pb { const unsigned char *p, *end; };
int pb_next(struct pb *m, uint32_t *field, uint64_t *v, const unsigned char **data, size_t *len);
/* protobuf, writing */
void pbw_varint(struct buf *b, uint32_t field, uint64_t v);
void pbw_bytes(struct buf *b, uint32_t field, const void *p, size_t n);

/* The relay's side, for mexec.c: queue one frame (its msgpack body) for the host. */
void host_frame(const struct buf *body);
/* A call's answer to the host: its protobuf body, or an error (an ArcboxError code). */
void host_respond(uint64_t id, const struct buf *body);
void host_respond_error(uint64_t id, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* How much waits for the host: mexec.c stops reading output beyond RELAY_BUF_MAX. */
size_t host_backlog(void);
#define RELAY_BUF_MAX (1 << 20)

/* mexec.c: machine execs run by the relay itself. */
int mexec_is_method(const char *method, uint32_t n);
void mexec_request(uint64_t id, const char *method, uint32_t mlen, const unsigned char *body, size_t blen);
int mexec_owns(const char *sid, uint32_t n);
void mexec_io(const unsigned char *frame, size_t n);
int mexec_poll_fill(struct pollfd *p, int max);
void mexec_poll_done(const struct pollfd *p, int n);
/* How long poll may sleep before an exec's drain grace ends (-1: no limit). */
int mexec_timeout_ms(void);
/* A child the relay reaped: one of its execs, maybe. */
void mexec_reaped(pid_t pid, int status);

/* netcmd.c: VM mode's datapath commands (MachineService.NetworkCommands), run in workers. */
int netcmd_is_method(const char *method, uint32_t n);
void netcmd_request(uint64_t id, const unsigned char *body, size_t blen);
int netcmd_poll_fill(struct pollfd *p, int max);
void netcmd_poll_done(const struct pollfd *p, int n);

/* relay.c: the relay itself (argv: name, port, agent IN and OUT FIFOs);
 * returns only on bad arguments or a fatal error. */
int relay_main(int argc, char **argv);

#endif
