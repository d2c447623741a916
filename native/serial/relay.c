/*
 * arcbox-serial-relay: the guest end of the agent protocol on a virtio-serial port (the
 * host, i.e. vmm, at the other end). It answers the host as soon as stage 2 has set the
 * machine up, runs machine execs itself (mexec.c), and carries every other frame to and
 * from the guest agent's FIFO pair once the agent is up.
 *
 * Why a C helper and not Bun: a virtio-serial port whose host side is closed reads as EOF
 * and polls as POLLIN|POLLHUP, level-triggered, until the host connects again; the only
 * edge the kernel gives is SIGIO (with O_ASYNC) when the host side opens or closes. Bun
 * has no way to wait for that without spinning or parking a thread in read(); here it is
 * a signalfd in one poll() set, so a machine with no host connected costs no CPU. And
 * the agent (Bun without a JIT under TCG) needs 3-4 s to start, the relay ~10 ms: the
 * machine is usable, and its first exec answered, that much sooner.
 *
 * Why FIFOs to the agent and not its Unix socket: Bun runs a one-second timer while any
 * socket connection is open in the process, so a connected socket woke the agent every
 * second for as long as the host was connected (lib/ipc/fifo-stream.ts). The agent serves
 * sessions on its FIFO pair as it does for vmm on a host (AgentServer.serveFifoSessions).
 *
 * Host sessions: the host starts each one by writing SYNC (guest/protocol/sync.ts, 16
 * bytes). Until then the relay discards what it reads (the tail of an older session);
 * then it answers SYNC at once and follows the host's frames. Each frame goes to the
 * relay's machine execs (machineExec/Resize/Signal requests, io frames of its execs), to
 * its datapath workers (networkCommands, netcmd.c) or to the agent.
 *
 * Agent sessions, one per host session: the relay opens the agent's OUT for reading, then
 * a thread opens IN for writing, which completes when the agent waits in its open of IN
 * (at start-up, or after its last session). Frames for the agent queue until then, behind
 * a SYNC that starts the agent's session; the agent's answering SYNC (and anything before
 * it) is dropped. When the host goes, the relay closes IN and reads OUT until the agent
 * closes its end (a writer opened while the agent still reads the old session would feed
 * it the new one) before it opens the next. If the agent dies, the frames it had are lost
 * (the host times those calls out) and the relay opens a session with its successor
 * (stage 2 restarts it) for the frames that follow.
 *
 * Frames to the host come from the agent and from the execs; the relay follows the
 * agent's frames so that its own go in between them, never inside one.
 *
 * relay_main(argc, argv) with argv: NAME PORT_DEVICE AGENT_IN_FIFO AGENT_OUT_FIFO. PID 1
 * runs it in a child of its own (native/init/machine-setup.c), linked in
 * rather than exec'd, and restarts it if it exits; it exits when its parent dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay.h"

static const char SYNC[16] = "\xff" "ARCBOX/AGENT/1\n";
/* How much of a frame is read before routing it: enough for the envelope's k, id, method
 * and sid, which msgpackr writes before the body or data. */
#define HEAD_MAX 4096

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

/* The boot trace (guest/platform/boot-trace.ts): "<uptime> <phase>" marks, the first
 * time only: "relay-start", and "relay-sync" when the first host session is linked,
 * i.e. when the host gets the guest's SYNC. */
static void boot_mark(const char *phase) {
  static int done_start, done_sync;
  int *done = strcmp(phase, "relay-sync") ? &done_start : &done_sync;
  const char *file = getenv("ARCBOX_BOOT_TRACE_FILE");
  if (*done || !file) return;
  *done = 1;
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
  fprintf(f, "%s %s\n", up, phase);
  fclose(f);
}

/* ---- the host side ---- */

enum host_state { DISCONNECTED, SYNCING, LINKED };
static enum host_state hst = DISCONNECTED;
static size_t matched; /* SYNCING: bytes of SYNC matched so far */
static struct buf to_host;
/* Our frames waiting for the end of the agent's frame being passed on. */
static struct buf held_for_host;

/* The host's frame being read: header, then body; routed once its head is known. */
enum route { UNDECIDED, TO_AGENT, TO_EXECS, DROPPED };
static unsigned char hdr[4];
static size_t hdr_have, frame_left;
static enum route route;
static struct buf head; /* UNDECIDED: the body so far; TO_EXECS: the whole body */

/* ---- the agent side ---- */

enum agent_state { AGENT_NONE, AGENT_OPENING, AGENT_OPEN, AGENT_DRAINING };
static enum agent_state ast = AGENT_NONE;
static const char *agent_in_path, *agent_out_path;
static int agent_w = -1, agent_r = -1; /* our writer on the agent's IN, our reader on its OUT */
static int opened_fd = -1, opened_errno; /* the opener thread's result */
static int opener_event = -1;
static struct buf to_agent;
static size_t agent_matched; /* OPEN: bytes of the agent's answering SYNC matched so far */
static int agent_synced;
static unsigned char agent_hdr[4]; /* OPEN: the agent's frame being passed on */
static size_t agent_hdr_have, agent_left;

static int agent_at_boundary(void) { return ast != AGENT_OPEN || !agent_synced || (!agent_hdr_have && !agent_left); }

void host_frame(const struct buf *body) {
  if (hst != LINKED) return;
  unsigned char h[4] = { (unsigned char)(body->len >> 24), (unsigned char)(body->len >> 16), (unsigned char)(body->len >> 8), (unsigned char)body->len };
  struct buf *to = agent_at_boundary() ? &to_host : &held_for_host;
  buf_append(to, h, 4);
  buf_append(to, body->data + body->off, body->len);
}

size_t host_backlog(void) { return to_host.len + held_for_host.len; }

void host_respond(uint64_t id, const struct buf *body) {
  struct buf f = { 0 };
  mpw_map(&f, 3);
  mpw_cstr(&f, "k"); mpw_cstr(&f, "res");
  mpw_cstr(&f, "id"); mpw_uint(&f, id);
  mpw_cstr(&f, "body"); mpw_bin(&f, body ? body->data + body->off : "", body ? body->len : 0);
  host_frame(&f);
  free(f.data);
}

void host_respond_error(uint64_t id, const char *code, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct buf f = { 0 };
  mpw_map(&f, 3);
  mpw_cstr(&f, "k"); mpw_cstr(&f, "res");
  mpw_cstr(&f, "id"); mpw_uint(&f, id);
  mpw_cstr(&f, "error");
  mpw_map(&f, 2);
  mpw_cstr(&f, "code"); mpw_cstr(&f, code);
  mpw_cstr(&f, "message"); mpw_cstr(&f, msg);
  host_frame(&f);
  free(f.data);
}

static void *opener(void *arg) {
  (void)arg;
  int fd;
  do fd = open(agent_in_path, O_WRONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  opened_errno = errno;
  __atomic_store_n(&opened_fd, fd, __ATOMIC_RELEASE);
  uint64_t one = 1;
  /* SAFETY: an eventfd write of 8 bytes only fails on overflow, after 2^64 - 2 of them. */
  (void)!write(opener_event, &one, sizeof one);
  return NULL;
}

/* Opens OUT for reading (the agent opens its writer only while someone reads), then IN
 * for writing in a thread: that open waits until the agent's reader is there. */
static void agent_open_begin(void) {
  agent_r = open(agent_out_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (agent_r < 0) { fprintf(stderr, "arcbox-serial-relay: open %s: %s\n", agent_out_path, strerror(errno)); exit(1); }
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, opener, NULL)) { fprintf(stderr, "arcbox-serial-relay: pthread_create failed\n"); exit(1); }
  pthread_attr_destroy(&attr);
  ast = AGENT_OPENING;
}

/* Ends the agent's session: it sees end of file and closes its end, which we wait for. */
static void agent_close_session(void) {
  if (agent_w >= 0) { close(agent_w); agent_w = -1; }
  ast = AGENT_DRAINING;
}

/* A new agent session for the current host session: frames queue behind its SYNC. */
static void agent_new_session(void) {
  buf_clear(&to_agent);
  buf_append(&to_agent, SYNC, sizeof SYNC);
  if (ast == AGENT_NONE) agent_open_begin();
  else if (ast == AGENT_OPEN) agent_close_session();
  /* OPENING: the pending open serves it. DRAINING: the open follows the drain. */
}

/* The agent's end of a session closed while we still used it: it died (stage 2 starts
 * another) or it dropped the session after a bad frame. */
static void agent_lost(void) {
  fprintf(stderr, "arcbox-serial-relay: the agent closed its session\n");
  /* A frame cut short would derail the host's decoder: complete it with zeros, which
   * decode as a bare 0 that the host ignores. */
  if (agent_synced && (agent_hdr_have || agent_left)) {
    static const char zeros[4096];
    size_t left = agent_left;
    if (agent_hdr_have) {
      buf_append(&to_host, zeros, 4 - agent_hdr_have);
      left = 0; /* a zero length: the frame is empty */
    }
    while (left) { size_t k = left < sizeof zeros ? left : sizeof zeros; buf_append(&to_host, zeros, k); left -= k; }
  }
  agent_hdr_have = agent_left = 0;
  buf_append(&to_host, held_for_host.data + held_for_host.off, held_for_host.len);
  buf_clear(&held_for_host);
  close(agent_r); agent_r = -1;
  if (agent_w >= 0) { close(agent_w); agent_w = -1; }
  ast = AGENT_NONE;
  /* The rest of a frame it was being sent is meaningless to its successor. */
  if (route == TO_AGENT && frame_left) route = DROPPED;
  if (hst == LINKED) agent_new_session();
}

/* The agent's bytes: its SYNC and what precedes it are dropped (the host has had ours);
 * frames pass on, and ours go in at frame boundaries. */
static void from_agent(const char *data, size_t n) {
  size_t i = 0;
  while (!agent_synced && i < n) {
    unsigned char b = (unsigned char)data[i++];
    agent_matched = b == (unsigned char)SYNC[agent_matched] ? agent_matched + 1 : b == (unsigned char)SYNC[0] ? 1 : 0;
    agent_synced = agent_matched == sizeof SYNC;
  }
  size_t start = i;
  while (i < n) {
    if (agent_left) {
      size_t k = agent_left < n - i ? agent_left : n - i;
      i += k; agent_left -= k;
    } else {
      agent_hdr[agent_hdr_have++] = (unsigned char)data[i++];
      if (agent_hdr_have < 4) continue;
      agent_left = (size_t)agent_hdr[0] << 24 | (size_t)agent_hdr[1] << 16 | (size_t)agent_hdr[2] << 8 | agent_hdr[3];
      agent_hdr_have = 0;
    }
    if (!agent_left && held_for_host.len) {
      buf_append(&to_host, data + start, i - start);
      start = i;
      buf_append(&to_host, held_for_host.data + held_for_host.off, held_for_host.len);
      buf_clear(&held_for_host);
    }
  }
  buf_append(&to_host, data + start, n - start);
}

/* ---- routing the host's frames ---- */

/* Where a frame goes, from its head: TO_EXECS, TO_AGENT, or UNDECIDED (read more). */
static enum route classify(const unsigned char *p, size_t have, int complete) {
  struct mp m = { p, p + have };
  uint32_t keys, kn, vn;
  const char *k, *v, *kind = NULL;
  uint32_t kind_len = 0;
  if (mp_map(&m, &keys)) goto short_head;
  for (uint32_t i = 0; i < keys; i++) {
    if (mp_str(&m, &k, &kn)) goto short_head;
    if ((kn == 1 && *k == 'k') || (kn == 6 && !memcmp(k, "method", 6)) || (kn == 3 && !memcmp(k, "sid", 3))) {
      if (mp_str(&m, &v, &vn)) goto short_head;
      if (kn == 1) { kind = v; kind_len = vn; }
      else if (kind_len == 3 && !memcmp(kind, "req", 3) && kn == 6) return mexec_is_method(v, vn) || netcmd_is_method(v, vn) ? TO_EXECS : TO_AGENT;
      else if (kind_len == 2 && !memcmp(kind, "io", 2) && kn == 3) return mexec_owns(v, vn) ? TO_EXECS : TO_AGENT;
      if (kind && !(kind_len == 3 && !memcmp(kind, "req", 3)) && !(kind_len == 2 && !memcmp(kind, "io", 2))) return TO_AGENT;
    } else if (mp_skip(&m)) goto short_head;
  }
  return TO_AGENT;
short_head:
  return complete || have >= HEAD_MAX ? TO_AGENT : UNDECIDED;
}

static void to_agent_append(const void *p, size_t n) {
  if (route != DROPPED) buf_append(&to_agent, p, n);
}

static void dispatch_to_execs(const unsigned char *p, size_t n) {
  struct mp m = { p, p + n };
  uint32_t keys, kn, vn, bn = 0;
  const char *k, *v, *method = NULL;
  const unsigned char *body = NULL;
  uint32_t mlen = 0;
  uint64_t id = 0;
  int is_req = 0;
  if (mp_map(&m, &keys)) return;
  for (uint32_t i = 0; i < keys; i++) {
    if (mp_str(&m, &k, &kn)) return;
    int bad = 0;
    if (kn == 1 && *k == 'k') {
      bad = mp_str(&m, &v, &vn);
      if (!bad && vn == 2 && !memcmp(v, "io", 2)) { mexec_io(p, n); return; }
      is_req = !bad && vn == 3 && !memcmp(v, "req", 3);
    } else if (kn == 2 && !memcmp(k, "id", 2)) bad = mp_uint(&m, &id);
    else if (kn == 6 && !memcmp(k, "method", 6)) bad = mp_str(&m, &method, &mlen);
    else if (kn == 4 && !memcmp(k, "body", 4)) bad = mp_bin(&m, &body, &bn);
    else bad = mp_skip(&m);
    if (bad) return;
  }
  if (!is_req || !method) return;
  if (netcmd_is_method(method, mlen)) netcmd_request(id, body ? body : (const unsigned char *)"", bn);
  else mexec_request(id, method, mlen, body ? body : (const unsigned char *)"", bn);
}

static void host_gone(void);

/*
 * Bytes from the host. SYNCING: skip to the end of SYNC (a plain match is enough: SYNC's
 * first byte occurs nowhere else in it), then answer it. LINKED: follow the frames; a
 * 0xff where a frame would start cannot be a frame (its length would exceed the agent's
 * limit), so it is a new session's SYNC: the host reconnected before we saw the old
 * connection close (qemu accepts the next client as soon as it notices the last one
 * gone, so the guest may see both at once).
 */
static void feed(const char *data, size_t n) {
  while (n) {
    if (hst == SYNCING) {
      size_t i = 0;
      int found = 0;
      while (i < n && !found) {
        unsigned char b = (unsigned char)data[i++];
        matched = b == (unsigned char)SYNC[matched] ? matched + 1 : b == (unsigned char)SYNC[0] ? 1 : 0;
        found = matched == sizeof SYNC;
      }
      if (!found) return;
      hst = LINKED;
      buf_clear(&to_host);
      buf_append(&to_host, SYNC, sizeof SYNC);
      hdr_have = frame_left = 0;
      agent_new_session();
      boot_mark("relay-sync");
      fprintf(stderr, "arcbox-serial-relay: host connected\n");
      data += i; n -= i;
      continue;
    }
    if (!frame_left && !hdr_have) {
      if ((unsigned char)*data == 0xff) {
        fprintf(stderr, "arcbox-serial-relay: host reconnected\n");
        host_gone();
        hst = SYNCING;
        continue;
      }
    }
    if (!frame_left) {
      hdr[hdr_have++] = (unsigned char)*data++;
      n--;
      if (hdr_have < 4) continue;
      hdr_have = 0;
      frame_left = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
      route = UNDECIDED;
      buf_clear(&head);
      if (!frame_left) { route = TO_AGENT; to_agent_append(hdr, 4); }
      continue;
    }
    size_t k = frame_left < n ? frame_left : n;
    if (route == UNDECIDED) {
      if (k > HEAD_MAX - head.len) k = HEAD_MAX - head.len;
      buf_append(&head, data, k);
      data += k; n -= k; frame_left -= k;
      route = classify((const unsigned char *)head.data + head.off, head.len, !frame_left);
      if (route == TO_AGENT) {
        to_agent_append(hdr, 4);
        to_agent_append(head.data + head.off, head.len);
      } else if (route == TO_EXECS && !frame_left) {
        dispatch_to_execs((const unsigned char *)head.data + head.off, head.len);
      }
      continue;
    }
    if (route == TO_EXECS) {
      buf_append(&head, data, k);
      if (k == frame_left) dispatch_to_execs((const unsigned char *)head.data + head.off, head.len);
    } else to_agent_append(data, k);
    data += k; n -= k; frame_left -= k;
  }
}

/* The host's session ended: what it had in flight is dropped, and the agent's session
 * with it. */
static void host_gone(void) {
  if (hst == LINKED) fprintf(stderr, "arcbox-serial-relay: host disconnected\n");
  /* Machine execs run on, as the agent's did: their output is dropped while no host is
   * linked (host_frame), and their exit goes to the next host session. */
  buf_clear(&to_host);
  buf_clear(&held_for_host);
  buf_clear(&to_agent);
  hdr_have = frame_left = 0;
  hst = DISCONNECTED;
  matched = 0;
  if (ast == AGENT_OPEN) agent_close_session();
}

/* The host side is open: no POLLHUP on the port right now. */
static int host_connected(int port) {
  struct pollfd p = { port, POLLIN, 0 };
  poll(&p, 1, 0);
  return !(p.revents & POLLHUP);
}

int relay_main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "arcbox-serial-relay: want PORT_DEVICE AGENT_IN_FIFO AGENT_OUT_FIFO\n"); return 2; }
  boot_mark("relay-start");
  agent_in_path = argv[2];
  agent_out_path = argv[3];
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  int port = open(argv[1], O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (port < 0) { fprintf(stderr, "arcbox-serial-relay: open %s: %s\n", argv[1], strerror(errno)); return 1; }
  /* SIGIO on every change of the host's connection (and on data, which we ignore);
   * SIGCHLD when a machine exec's process exits. Blocked before any thread starts, so
   * every thread has them blocked and only the signalfd sees them. */
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGIO);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  opener_event = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (sfd < 0 || opener_event < 0 || fcntl(port, F_SETOWN, getpid()) < 0 || fcntl(port, F_SETFL, fcntl(port, F_GETFL) | O_ASYNC) < 0) {
    perror("arcbox-serial-relay: signalfd/eventfd/O_ASYNC");
    return 1;
  }

  static char data[65536];
  enum { P_SIG, P_OPENED, P_PORT, P_AGENT_R, P_AGENT_W, P_EXECS, P_MAX = P_EXECS + 320 };
  struct pollfd p[P_MAX];
  for (;;) {
    if (hst == DISCONNECTED && host_connected(port)) { hst = SYNCING; matched = 0; }
    int agent_open = ast == AGENT_OPEN;
    p[P_SIG] = (struct pollfd){ sfd, POLLIN, 0 };
    p[P_OPENED] = (struct pollfd){ opener_event, POLLIN, 0 };
    /* Disconnected, the port polls readable forever: wait for SIGIO instead. */
    p[P_PORT] = (struct pollfd){ hst == DISCONNECTED ? -1 : port, (short)((to_agent.len < RELAY_BUF_MAX ? POLLIN : 0) | (to_host.len ? POLLOUT : 0)), 0 };
    p[P_AGENT_R] = (struct pollfd){ agent_open || ast == AGENT_DRAINING ? agent_r : -1, (short)(host_backlog() < RELAY_BUF_MAX || ast == AGENT_DRAINING ? POLLIN : 0), 0 };
    p[P_AGENT_W] = (struct pollfd){ agent_open && to_agent.len ? agent_w : -1, POLLOUT, 0 };
    /* Execs are served with or without a host: they outlive its sessions. */
    int nexec = mexec_poll_fill(p + P_EXECS, P_MAX - P_EXECS);
    int nnet = netcmd_poll_fill(p + P_EXECS + nexec, P_MAX - P_EXECS - nexec);
    if (poll(p, (nfds_t)(P_EXECS + nexec + nnet), mexec_timeout_ms()) < 0) { if (errno == EINTR) continue; perror("arcbox-serial-relay: poll"); return 1; }
    if (p[P_SIG].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {}
      int status;
      for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) mexec_reaped(pid, status);
    }
    if (p[P_OPENED].revents & POLLIN) {
      uint64_t v;
      /* SAFETY: the eventfd is readable; a failed read only leaves it readable. */
      (void)!read(opener_event, &v, sizeof v);
      int fd = __atomic_load_n(&opened_fd, __ATOMIC_ACQUIRE);
      if (fd < 0) { fprintf(stderr, "arcbox-serial-relay: open %s: %s\n", agent_in_path, strerror(opened_errno)); return 1; }
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
      agent_w = fd;
      ast = AGENT_OPEN;
      agent_matched = agent_synced = 0;
      agent_hdr_have = agent_left = 0;
      if (hst != LINKED) agent_close_session(); /* the host left meanwhile */
      else fprintf(stderr, "arcbox-serial-relay: agent linked\n");
    }
    if (ast == AGENT_DRAINING && (p[P_AGENT_R].revents & (POLLIN | POLLHUP | POLLERR))) {
      /* Discard the old session's tail until the agent closes its writer. */
      ssize_t r = read(agent_r, data, sizeof data);
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        close(agent_r); agent_r = -1;
        ast = AGENT_NONE;
        if (hst == LINKED) agent_open_begin();
      }
    }
    int gone = hst != DISCONNECTED && (p[P_PORT].revents & (POLLHUP | POLLERR));
    if (hst != DISCONNECTED && (p[P_PORT].revents & POLLIN)) {
      ssize_t r = read(port, data, sizeof data);
      if (r > 0) feed(data, (size_t)r);
      else if (r == 0) gone = 1; /* EOF: the host side closed */
    }
    if (nexec) mexec_poll_done(p + P_EXECS, nexec);
    if (nnet) netcmd_poll_done(p + P_EXECS + nexec, nnet);
    if (hst == LINKED && !gone) {
      if (agent_open && ast == AGENT_OPEN && (p[P_AGENT_R].revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t r = read(agent_r, data, sizeof data);
        if (r > 0) from_agent(data, (size_t)r);
        else if (r == 0 || (errno != EAGAIN && errno != EINTR)) agent_lost();
      }
      /* Try right away: both sides are usually writable. */
      if (ast == AGENT_OPEN && to_agent.len && flush(agent_w, &to_agent) < 0) agent_lost();
      if (to_host.len && flush(port, &to_host) < 0) gone = 1;
    }
    if (gone) {
      /* Stale bytes still queued in the port belong to the old session; SYNCING skips them. */
      host_gone();
    }
  }
}
