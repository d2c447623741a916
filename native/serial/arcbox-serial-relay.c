/*
 * arcbox-serial-relay: carries the agent protocol between a virtio-serial port (the host,
 * i.e. vmm, at the other end) and the guest agent's Unix socket, one host session at a time.
 *
 * Why a C helper and not Bun: a virtio-serial port whose host side is closed reads as EOF
 * and polls as POLLIN|POLLHUP, level-triggered, until the host connects again; the only
 * edge the kernel gives is SIGIO (with O_ASYNC) when the host side opens or closes. Bun
 * has no way to wait for that without spinning or parking a thread in read(); here it is
 * a signalfd in one poll() set, so a machine with no host connected costs no CPU.
 *
 * Sessions: the host starts each one by writing SYNC (guest/protocol/sync.ts, 16 bytes).
 * Until it has seen SYNC the relay discards what it reads (the tail of an older session),
 * then opens a fresh connection to the agent (so its frame decoder starts clean), answers
 * SYNC (the host discards what it reads before it, likewise) and copies bytes both ways.
 * When the host closes, the relay closes that agent connection and drops what was in flight.
 *
 * Usage: arcbox-serial-relay PORT_DEVICE AGENT_SOCKET
 * It exits when its parent (the agent) dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char SYNC[16] = "\xff" "ARCBOX/AGENT/1\n";
#define BUF_MAX (1 << 20) /* stop reading a side while this much waits for the other */

struct buf { char *data; size_t len, cap; };

static void buf_append(struct buf *b, const char *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { perror("arcbox-serial-relay: realloc"); exit(1); }
    b->data = d; b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_consume(struct buf *b, size_t n) {
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
}

/* Writes what it can without blocking; -1 when the fd is broken. */
static int flush(int fd, struct buf *b) {
  while (b->len) {
    ssize_t w = write(fd, b->data, b->len);
    if (w > 0) { buf_consume(b, (size_t)w); continue; }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
  }
  return 0;
}

static int connect_agent(const char *path) {
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(path) >= sizeof a.sun_path) return -1;
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) { close(fd); return -1; }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

/* The host side is open: no POLLHUP on the port right now. */
static int host_connected(int port) {
  struct pollfd p = { port, POLLIN, 0 };
  poll(&p, 1, 0);
  return !(p.revents & POLLHUP);
}

enum state { DISCONNECTED, SYNCING, LINKED };

static enum state st = DISCONNECTED;
static int agent = -1;
static const char *agent_path;
static struct buf to_agent, to_host;
static size_t matched;             /* bytes of SYNC matched so far while SYNCING */
static unsigned char hdr[4];       /* LINKED: the host's frame header being read */
static size_t hdr_have, frame_left; /* ... and what is left of the frame's body */

/* Ends the agent side of a session; what was in flight belongs to it and is dropped. */
static void drop_session(enum state next) {
  if (agent >= 0) { close(agent); agent = -1; }
  to_agent.len = to_host.len = 0;
  st = next;
  matched = 0;
}

/*
 * Bytes from the host. SYNCING: skip to the end of SYNC (a plain match is enough: SYNC's
 * first byte occurs nowhere else in it), then link a fresh agent connection. LINKED:
 * pass them on, following the frames; a 0xff where a frame would start cannot be a
 * frame (its length would exceed the agent's limit), so it is a new session's SYNC: the
 * host reconnected before we saw the old connection close (qemu accepts the next client
 * as soon as it notices the last one gone, so the guest may see both at once).
 */
static void feed(const char *data, size_t n) {
  while (n) {
    if (st == SYNCING) {
      size_t i = 0;
      int found = 0;
      while (i < n && !found) {
        unsigned char b = (unsigned char)data[i++];
        matched = b == (unsigned char)SYNC[matched] ? matched + 1 : b == (unsigned char)SYNC[0] ? 1 : 0;
        found = matched == sizeof SYNC;
      }
      if (!found) return;
      agent = connect_agent(agent_path);
      if (agent < 0) { fprintf(stderr, "arcbox-serial-relay: connect %s: %s\n", agent_path, strerror(errno)); exit(1); }
      buf_append(&to_host, SYNC, sizeof SYNC);
      hdr_have = frame_left = 0;
      st = LINKED;
      fprintf(stderr, "arcbox-serial-relay: host connected\n");
      data += i; n -= i;
      continue;
    }
    size_t i = 0;
    while (i < n) {
      if (frame_left) {
        size_t k = frame_left < n - i ? frame_left : n - i;
        i += k; frame_left -= k;
        continue;
      }
      if (hdr_have == 0 && (unsigned char)data[i] == 0xff) break;
      hdr[hdr_have++] = (unsigned char)data[i++];
      if (hdr_have == 4) {
        frame_left = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        hdr_have = 0;
      }
    }
    buf_append(&to_agent, data, i);
    data += i; n -= i;
    if (n) {
      fprintf(stderr, "arcbox-serial-relay: host reconnected\n");
      drop_session(SYNCING);
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: arcbox-serial-relay PORT_DEVICE AGENT_SOCKET\n"); return 2; }
  agent_path = argv[2];
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  int port = open(argv[1], O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (port < 0) { fprintf(stderr, "arcbox-serial-relay: open %s: %s\n", argv[1], strerror(errno)); return 1; }
  /* SIGIO on every change of the host's connection (and on data, which we ignore). */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGIO);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0 || fcntl(port, F_SETOWN, getpid()) < 0 || fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_ASYNC) < 0) {
    perror("arcbox-serial-relay: signalfd/O_ASYNC");
    return 1;
  }

  char data[65536];
  for (;;) {
    if (st == DISCONNECTED && host_connected(port)) { st = SYNCING; matched = 0; }
    struct pollfd p[3] = {
      { sfd, POLLIN, 0 },
      /* Disconnected, the port polls readable forever: wait for SIGIO instead. */
      { st == DISCONNECTED ? -1 : port, (short)((to_agent.len < BUF_MAX ? POLLIN : 0) | (to_host.len ? POLLOUT : 0)), 0 },
      { agent, (short)((to_host.len < BUF_MAX ? POLLIN : 0) | (to_agent.len ? POLLOUT : 0)), 0 },
    };
    if (poll(p, 3, -1) < 0) { if (errno == EINTR) continue; perror("arcbox-serial-relay: poll"); return 1; }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {}
    }
    int host_gone = st != DISCONNECTED && (p[1].revents & (POLLHUP | POLLERR));
    if (st != DISCONNECTED && (p[1].revents & POLLIN)) {
      ssize_t r = read(port, data, sizeof data);
      if (r > 0) feed(data, (size_t)r);
      else if (r == 0) host_gone = 1; /* EOF: the host side closed */
    }
    if (st == LINKED && !host_gone) {
      if ((p[1].revents & POLLOUT) && flush(port, &to_host) < 0) host_gone = 1;
      if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = read(agent, data, sizeof data);
        if (r > 0) buf_append(&to_host, data, (size_t)r);
        else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          /* The agent dropped the session (a bad frame): the host must start a new one. */
          fprintf(stderr, "arcbox-serial-relay: agent closed the session; waiting for SYNC\n");
          drop_session(SYNCING);
          continue;
        }
      }
      if ((p[2].revents & POLLOUT) && flush(agent, &to_agent) < 0) { drop_session(SYNCING); continue; }
      /* Try right away: both sides are usually writable. */
      if (to_host.len && flush(port, &to_host) < 0) host_gone = 1;
      if (to_agent.len && flush(agent, &to_agent) < 0) { drop_session(SYNCING); continue; }
    }
    if (host_gone) {
      if (st == LINKED) fprintf(stderr, "arcbox-serial-relay: host disconnected\n");
      /* Stale bytes still queued in the port belong to the old session; SYNCING skips them. */
      drop_session(DISCONNECTED);
    }
  }
}
