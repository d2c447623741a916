/*
 * arcbox-serial-relay: carries the agent protocol between a virtio-serial port (the host,
 * i.e. vmm, at the other end) and the guest agent's FIFO pair, one host session at a time.
 *
 * Why a C helper and not Bun: a virtio-serial port whose host side is closed reads as EOF
 * and polls as POLLIN|POLLHUP, level-triggered, until the host connects again; the only
 * edge the kernel gives is SIGIO (with O_ASYNC) when the host side opens or closes. Bun
 * has no way to wait for that without spinning or parking a thread in read(); here it is
 * a signalfd in one poll() set, so a machine with no host connected costs no CPU.
 *
 * Why FIFOs to the agent and not its Unix socket: Bun runs a one-second timer while any
 * socket connection is open in the process, so a connected socket woke the agent every
 * second for as long as the host was connected (lib/ipc/fifo-stream.ts). The agent serves
 * sessions on its FIFO pair as it does for vmm on a host (AgentServer.serveFifoSessions).
 *
 * Sessions: the host starts each one by writing SYNC (guest/protocol/sync.ts, 16 bytes).
 * Until it has seen SYNC the relay discards what it reads (the tail of an older session),
 * then opens the agent's FIFOs (its reader on OUT first, then its writer on IN, which
 * waits for the agent's reader, which the kernel completes while the agent's open is
 * pending, without the agent running), writes SYNC to the agent and back to the host (the
 * host discards what it reads before it), and copies bytes both ways, minus what the
 * agent writes up to and including its own answering SYNC. When the host
 * closes, the relay closes its writer and drops what was in flight, and waits until the
 * agent has closed that session (end of file on OUT) before it opens the next: a writer
 * opened while the agent still reads the old session would feed it the new one.
 *
 * Usage: arcbox-serial-relay PORT_DEVICE AGENT_IN_FIFO AGENT_OUT_FIFO
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
#include <unistd.h>

static const char SYNC[16] = "\xff" "ARCBOX/AGENT/1\n";
#define BUF_MAX (1 << 20) /* stop reading a side while this much waits for the other */

/* Bytes waiting are data[off, off + len). Consuming moves `off` only: a port write takes
 * at most 32 KiB, and moving the rest down after each one copied the buffer over and over
 * (every copy is slow in a TCG guest). The bytes move down only when room is needed. */
struct buf { char *data; size_t off, len, cap; };

static void buf_append(struct buf *b, const char *p, size_t n) {
  if (b->off + b->len + n > b->cap && b->off) {
    memmove(b->data, b->data + b->off, b->len);
    b->off = 0;
  }
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) { perror("arcbox-serial-relay: realloc"); exit(1); }
    b->data = d; b->cap = cap;
  }
  memcpy(b->data + b->off + b->len, p, n);
  b->len += n;
}

static void buf_consume(struct buf *b, size_t n) {
  b->off += n;
  b->len -= n;
  if (!b->len) b->off = 0;
}

/* Writes what it can without blocking; -1 when the fd is broken. */
static int flush(int fd, struct buf *b) {
  while (b->len) {
    ssize_t w = write(fd, b->data + b->off, b->len);
    if (w > 0) { buf_consume(b, (size_t)w); continue; }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    return -1;
  }
  return 0;
}

/* The boot trace (guest/platform/boot-trace.ts): "<uptime> relay-sync" when the first
 * host session is linked, i.e. when the host gets the guest's SYNC. */
static void boot_mark_first_sync(void) {
  static int done;
  const char *file = getenv("ARCBOX_BOOT_TRACE_FILE");
  if (done || !file) return;
  done = 1;
  char up[64] = "";
  int fd = open("/proc/uptime", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, up, sizeof up - 1);
  close(fd);
  char *sp = n > 0 ? strchr(up, ' ') : NULL;
  if (!sp) return;
  *sp = 0;
  FILE *f = fopen(file, "ae");
  if (!f) return;
  fprintf(f, "%s relay-sync\n", up);
  fclose(f);
}

static const char *agent_in_path, *agent_out_path;
static int agent_w = -1, agent_r = -1; /* our writer on the agent's IN, our reader on its OUT */

/* Opens a session's FIFO ends: the reader first (the agent opens its writer only while
 * someone reads), then the writer, which blocks until the agent's reader is there. */
static int open_agent(void) {
  agent_r = open(agent_out_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (agent_r < 0) return -1;
  do agent_w = open(agent_in_path, O_WRONLY | O_CLOEXEC);
  while (agent_w < 0 && errno == EINTR);
  if (agent_w < 0) { close(agent_r); agent_r = -1; return -1; }
  fcntl(agent_w, F_SETFL, fcntl(agent_w, F_GETFL) | O_NONBLOCK);
  return 0;
}

/* The host side is open: no POLLHUP on the port right now. */
static int host_connected(int port) {
  struct pollfd p = { port, POLLIN, 0 };
  poll(&p, 1, 0);
  return !(p.revents & POLLHUP);
}

/* DRAINING: the host's session ended; waiting for the agent to close its end of it. */
enum state { DISCONNECTED, SYNCING, LINKED, DRAINING };

static enum state st = DISCONNECTED;
static struct buf to_agent, to_host;
static struct buf pending; /* host bytes read while DRAINING (a new session's SYNC) */
static size_t matched;             /* bytes of SYNC matched so far while SYNCING */
static size_t agent_matched;       /* LINKED: bytes of the agent's answering SYNC matched so far */
static int agent_synced;           /* ... and whether it has come (what precedes it is dropped) */
static unsigned char hdr[4];       /* LINKED: the host's frame header being read */
static size_t hdr_have, frame_left; /* ... and what is left of the frame's body */

/* Ends the agent side of a session; what was in flight belongs to it and is dropped.
 * `agent_done`: the agent has closed its end already (end of file, broken pipe). */
static void drop_session(int agent_done) {
  if (agent_w >= 0) { close(agent_w); agent_w = -1; }
  to_agent.len = to_host.len = to_agent.off = to_host.off = 0;
  matched = 0;
  if (agent_r >= 0 && !agent_done) { st = DRAINING; return; }
  if (agent_r >= 0) { close(agent_r); agent_r = -1; }
  st = SYNCING;
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
      if (open_agent() < 0) { fprintf(stderr, "arcbox-serial-relay: open %s: %s\n", agent_in_path, strerror(errno)); exit(1); }
      buf_append(&to_agent, SYNC, sizeof SYNC);
      buf_append(&to_host, SYNC, sizeof SYNC);
      agent_matched = 0;
      agent_synced = 0;
      hdr_have = frame_left = 0;
      st = LINKED;
      boot_mark_first_sync();
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
      drop_session(0);
      if (st == DRAINING) { buf_append(&pending, data, n); return; }
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: arcbox-serial-relay PORT_DEVICE AGENT_IN_FIFO AGENT_OUT_FIFO\n"); return 2; }
  agent_in_path = argv[2];
  agent_out_path = argv[3];
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
    int linked = st == LINKED;
    struct pollfd p[4] = {
      { sfd, POLLIN, 0 },
      /* Disconnected, the port polls readable forever: wait for SIGIO instead. Draining,
       * the host's next bytes wait in the port. */
      { st == DISCONNECTED || st == DRAINING ? -1 : port, (short)((to_agent.len < BUF_MAX ? POLLIN : 0) | (to_host.len ? POLLOUT : 0)), 0 },
      { linked || st == DRAINING ? agent_r : -1, (short)(to_host.len < BUF_MAX || st == DRAINING ? POLLIN : 0), 0 },
      { linked && to_agent.len ? agent_w : -1, POLLOUT, 0 },
    };
    if (poll(p, 4, -1) < 0) { if (errno == EINTR) continue; perror("arcbox-serial-relay: poll"); return 1; }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {}
    }
    if (st == DRAINING) {
      /* Discard the old session's tail until the agent closes its writer. */
      if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
        ssize_t r = read(agent_r, data, sizeof data);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
          close(agent_r); agent_r = -1;
          st = host_connected(port) ? SYNCING : DISCONNECTED;
          if (st == SYNCING && pending.len) {
            struct buf b = pending;
            pending = (struct buf){ 0 };
            feed(b.data + b.off, b.len);
            free(b.data);
          }
          pending.len = 0;
        }
      }
      continue;
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
        ssize_t r = read(agent_r, data, sizeof data);
        if (r > 0) {
          size_t i = 0;
          /* The host has had our SYNC: skip the agent's, and anything it wrote before it. */
          while (!agent_synced && i < (size_t)r) {
            unsigned char b = (unsigned char)data[i++];
            agent_matched = b == (unsigned char)SYNC[agent_matched] ? agent_matched + 1 : b == (unsigned char)SYNC[0] ? 1 : 0;
            agent_synced = agent_matched == sizeof SYNC;
          }
          buf_append(&to_host, data + i, (size_t)r - i);
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          /* The agent dropped the session (a bad frame): the host must start a new one. */
          fprintf(stderr, "arcbox-serial-relay: agent closed the session; waiting for SYNC\n");
          drop_session(1);
          continue;
        }
      }
      if ((p[3].revents & (POLLOUT | POLLERR)) && flush(agent_w, &to_agent) < 0) { drop_session(1); continue; }
      /* Try right away: both sides are usually writable. */
      if (to_host.len && flush(port, &to_host) < 0) host_gone = 1;
      if (to_agent.len && flush(agent_w, &to_agent) < 0) { drop_session(1); continue; }
    }
    if (host_gone) {
      if (st == LINKED) fprintf(stderr, "arcbox-serial-relay: host disconnected\n");
      /* Stale bytes still queued in the port belong to the old session; SYNCING skips them. */
      drop_session(0);
      if (st == SYNCING) st = DISCONNECTED;
    }
  }
}
