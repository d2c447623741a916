/*
 * Shared declarations of arcbox-shim's parts: arcbox-shim.c (options, runc, process
 * lifecycle, the event loop), json-log.c (the container log), attach.c (stdio clients),
 * util.c (buffers and small syscall helpers).
 */
#ifndef ARCBOX_SHIM_H
#define ARCBOX_SHIM_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/fd-io.h"

#define MAX_CLIENTS 64
#define CHUNK 65536
#define LINE_MAX_BYTES 16384
#define CLIENT_BUF_MAX (8 << 20)
#define HOLD_WAIT_MS 60000 /* how long --hold output waits for its first client */

struct buf { char *data; size_t len, cap; };

/* `sent`: the client wrote stdin bytes, which makes it the stdin owner (see client_read). */
struct client { int fd; int reading; int sent; struct buf out; };

struct options {
  const char *mode, *id, *state, *runc, *root, *bundle, *container, *process, *spec;
  const char *stdio_path, *console_path, *notify_path, *log_path, *oom_path;
  int tty, stdin_open, stdin_once, hold;
};
extern struct options opt;

/* util.c */
void buf_reserve(struct buf *b, size_t n);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n);
void die(const char *what);
void set_nonblock(int fd);
int unix_listen(const char *path);
void rfc3339_now(char *out, size_t n, long long *unix_nano);

/* arcbox-shim.c */
int recv_fd(int sock);

/* start-fifo.c */
int start_container(int argc, char **argv);
int start_container_writer(int argc, char **argv);

/* exec-direct.c */
int exec_direct(int in_r, int out_w, int err_w, int *master, pid_t *pid);

/* json-log.c */
extern int log_fd;
void log_output(int stream, const char *p, size_t n);
void log_flush(void);

/* attach.c */
extern struct client clients[MAX_CLIENTS];
extern int nclients;
extern int had_client;
extern struct buf replay;
extern int stdin_fd;
extern struct buf stdin_buf;
extern int stdin_close_pending;
void drop_client(int i);
void broadcast(int stream, const char *p, size_t n);
int clients_full(void);
int clients_pending(void);
void close_stdin(void);
void client_read(int i, short revents);

#endif
