/* arcbox-shim: attach clients of the stdio socket (framing: guest/README.md). */
#include "shim.h"

struct client clients[MAX_CLIENTS];
int nclients;
int had_client;       /* with --hold, output waits for the first client */
struct buf replay;
int stdin_fd = -1;    /* write side of the process's stdin (pipe or pty master) */
struct buf stdin_buf;
int stdin_close_pending;

void drop_client(int i) {
  close(clients[i].fd);
  free(clients[i].out.data);
  clients[i] = clients[--nclients];
}

/* A client has more queued than CLIENT_BUF_MAX: stop reading the process's output until
 * it catches up, as Docker's attach does (the process blocks on a full pipe; nothing is
 * dropped for a slow reader, e.g. a guest agent running without a JIT). */
int clients_full(void) {
  for (int i = 0; i < nclients; i++) if (clients[i].out.len > CLIENT_BUF_MAX) return 1;
  return 0;
}

/* Some client has output queued that it has not read yet. */
int clients_pending(void) {
  for (int i = 0; i < nclients; i++) if (clients[i].out.len) return 1;
  return 0;
}

void broadcast(int stream, const char *p, size_t n) {
  unsigned char hdr[8] = { (unsigned char)stream, 0, 0, 0,
    (unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8), (unsigned char)n };
  if (opt.hold && !had_client) {
    if (replay.len > CLIENT_BUF_MAX) return;
    if (!opt.tty) buf_append(&replay, hdr, 8);
    buf_append(&replay, p, n);
    return;
  }
  for (int i = 0; i < nclients; i++) {
    struct client *c = &clients[i];
    size_t hn = opt.tty ? 0 : 8, done = 0;
    if (c->out.len == 0) { /* nothing queued: try to send right away, queue only the rest */
      struct iovec iov[2] = { { hdr, hn }, { (void *)p, n } };
      ssize_t w = writev(c->fd, iov + (hn ? 0 : 1), hn ? 2 : 1);
      if (w > 0) done = (size_t)w;
    }
    if (done < hn) buf_append(&c->out, hdr + done, hn - done);
    size_t body_done = done > hn ? done - hn : 0;
    buf_append(&c->out, p + body_done, n - body_done);
  }
}

void close_stdin(void) {
  if (stdin_fd < 0) return;
  if (stdin_buf.len) { stdin_close_pending = 1; return; }
  if (opt.tty) { /* a pty cannot be half-closed: send EOF (^D) to the line discipline instead */
    write(stdin_fd, "\x04", 1);
    return;
  }
  close(stdin_fd);
  stdin_fd = -1;
}

/*
 * End of a client's input closes the process's stdin (with --stdin-once) when that client
 * owns stdin: it sent stdin bytes, or it half-closed (shutdown(SHUT_WR): POLLRDHUP without
 * POLLHUP) while still reading. A client that only reads and then goes away entirely
 * (POLLHUP) does not close stdin. With a TTY only an explicit half-close does (a ^D to
 * the line discipline): a client that sent keys and then went away (a detach with
 * ctrl-p,ctrl-q) leaves the shell running for the next attach, as in Docker.
 */
void client_read(int i, short revents) {
  char data[CHUNK];
  ssize_t r = read(clients[i].fd, data, sizeof data);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r <= 0) {
    int half_close = r == 0 && !(revents & POLLHUP);
    clients[i].reading = 0;
    if (r == 0) shutdown(clients[i].fd, SHUT_RD);
    if (opt.stdin_once && (half_close || (clients[i].sent && !opt.tty))) close_stdin();
    return;
  }
  clients[i].sent = 1;
  if (stdin_fd >= 0) buf_append(&stdin_buf, data, (size_t)r);
}

