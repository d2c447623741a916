/*
 * VM mode's container datapath, run by the relay: MachineService.NetworkCommands from
 * netd (through vmm), the `ip`, `iptables-restore`, `iptables-save`, `sysctl` and
 * `nsenter` steps that build bridges, veth pairs, namespaces and rules in the engine
 * machine (services/netd/platform/datapath.ts decides them; docs/architecture.md, "Engine
 * in a machine").
 *
 * Why here and not in the agent: the relay answers ~0.1 s after PID 1 starts, the agent
 * (Bun without a JIT under TCG) 2-3 s later. With the relay running them, netd builds a
 * container's network while the agent is still starting, so the first `docker run` after
 * a boot no longer waits for the two one after the other; and each call skips the
 * agent's spawn path (~30 ms of interpreted JavaScript per process under TCG).
 *
 * Each request runs in a worker process the relay forks: the commands one after the
 * other (stdin fed, stdout and stderr kept), stopping at the first failure that is not
 * `may_fail`, as the agent did. The worker writes its answer to a pipe the relay polls,
 * so the relay's loop never waits for a command. Answer on the pipe: 'R' and the
 * NetworkCommandsResponse, or 'E', an error code, a NUL and the message.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "relay.h"
#include "../common/exec-path.h"
#include "../common/fd-io.h"

#define MAX_WORKERS 64
#define MAX_COMMANDS 256
/* A command's stdout or stderr beyond this is cut (listings are a few KiB). */
#define OUTPUT_MAX (4u << 20)

/* What netd may run (namespace changes go through `ip netns` and `nsenter`). */
static const char *const ALLOWED[] = { "ip", "iptables-restore", "iptables-save", "sysctl", "nsenter" };
/* The tools image first; iptables' extensions (libxt_*.so) are not at Debian's path. */
static char *const TOOL_ENV[] = {
  "PATH=/opt/arcbox/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "HOME=/root",
  "TMPDIR=/tmp",
  "XTABLES_LIBDIR=/opt/arcbox/lib/xtables",
  NULL,
};
#define NET_MODULES "/opt/arcbox/modules/net"
/* Stage 2 writes it once it has loaded the networking modules (guest/boot/stage2.sh). */
#define LOADED_MARKER "/run/arcbox/net-modules-loaded"

struct command { char *argv[64]; int argc; const unsigned char *stdin_data; size_t stdin_len; int may_fail; };

/* The machine runs under TCG (the word arcbox.accel=tcg on its command line): decided
 * once, by the relay at its first request, and inherited by every worker. -1: not yet. */
static int under_tcg = -1;

struct worker { uint64_t req_id; int fd; struct buf answer; };
static struct worker *workers[MAX_WORKERS];
static int nworkers;

int netcmd_is_method(const char *m, uint32_t n) { return n == 15 && !memcmp(m, "networkCommands", 15); }

static int allowed(const char *name) {
  for (size_t i = 0; i < sizeof ALLOWED / sizeof ALLOWED[0]; i++)
    if (!strcmp(name, ALLOWED[i])) return 1;
  return 0;
}

/* One NetworkCommand message; -1 when malformed. argv is copied (freed by
 * free_commands); stdin points into the request body, which the worker keeps (fork). */
static int parse_command(const unsigned char *p, size_t len, struct command *c) {
  struct pb m = { p, p + len };
  uint32_t field;
  uint64_t v;
  const unsigned char *d;
  size_t n;
  int r;
  memset(c, 0, sizeof *c);
  while ((r = pb_next(&m, &field, &v, &d, &n)) == 0) {
    if (field == 1 && d) {
      if (c->argc == (int)(sizeof c->argv / sizeof c->argv[0]) - 1 || memchr(d, 0, n)) return -1;
      c->argv[c->argc] = strndup((const char *)d, n);
      if (!c->argv[c->argc++]) return -1;
    } else if (field == 2 && d) {
      c->stdin_data = d;
      c->stdin_len = n;
    } else if (field == 3 && !d) c->may_fail = v != 0;
  }
  return r < 0 ? -1 : 0;
}

static void free_commands(struct command *c, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < c[i].argc; j++) free(c[i].argv[j]);
}

/* ---- in the worker ---- */

static void fail(int out, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));
static void fail(int out, const char *code, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct buf b = { 0 };
  buf_append(&b, "E", 1);
  buf_append(&b, code, strlen(code) + 1);
  buf_append(&b, msg, strlen(msg));
  /* SAFETY: a failed write means the relay is gone: nobody wants the answer. */
  (void)write_all(out, b.data + b.off, b.len);
  _exit(0);
}

/* Runs one program to its end: stdin fed, stdout and stderr collected. Returns its exit
 * code (128 + signal when killed), or -1 with errno when it could not be started. */
static int run(const char *exe, char *const argv[], const unsigned char *in, size_t in_len, struct buf *out, struct buf *err) {
  int pin[2], pout[2], perr[2];
  if (pipe2(pin, O_CLOEXEC) < 0) return -1;
  if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL);
    /* Under TCG, code is translated per virtual address: a dynamically linked tool (ip,
     * iptables-restore) loaded at new random addresses is translated afresh each time,
     * which was half of its ~80 ms. These are short-lived tools fed by netd; no container
     * process ever runs with this (crun runs under the agent, not here). */
    if (under_tcg) personality(ADDR_NO_RANDOMIZE);
    dup2(pin[0], 0);
    dup2(pout[1], 1);
    dup2(perr[1], 2);
    execve(exe, argv, TOOL_ENV);
    dprintf(2, "exec %s: %s\n", exe, strerror(errno));
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  fcntl(pin[1], F_SETFL, O_NONBLOCK);
  int wfd = in_len ? pin[1] : -1;
  if (wfd < 0) close(pin[1]);
  size_t written = 0;
  int open_out = 2;
  char chunk[65536];
  while (open_out || wfd >= 0) {
    struct pollfd p[3] = { { pout[0], POLLIN, 0 }, { perr[0], POLLIN, 0 }, { wfd, POLLOUT, 0 } };
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (wfd >= 0 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(wfd, in + written, in_len - written);
      if (w > 0) written += (size_t)w;
      /* Done, or the program stopped reading (EPIPE): its exit code tells the rest. */
      if (written == in_len || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        close(wfd);
        wfd = -1;
      }
    }
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(p[i].fd, chunk, sizeof chunk);
      if (r > 0) {
        struct buf *b = i ? err : out;
        if (b->len < OUTPUT_MAX) buf_append(b, chunk, (size_t)r);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(p[i].fd);
        if (i) perr[0] = -1;
        else pout[0] = -1;
        open_out--;
      }
    }
  }
  if (wfd >= 0) close(wfd);
  if (pout[0] >= 0) close(pout[0]);
  if (perr[0] >= 0) close(perr[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The networking modules (bridge, veth, netfilter), once per boot, unless stage 2 loaded
 * them already: insmod in dependency order ("exists" is fine), then forwarding on. */
static void prepare(int out) {
  if (access(LOADED_MARKER, F_OK) == 0 || access(NET_MODULES "/load-order", F_OK) != 0) return;
  static char *const script[] = {
    "busybox", "sh", "-c",
    "while read -r ko; do insmod \"" NET_MODULES "/$ko\" 2>/dev/null || true; done < \"" NET_MODULES "/load-order\"; "
    "echo 1 > /proc/sys/net/ipv4/ip_forward && : > " LOADED_MARKER,
    NULL,
  };
  struct buf o = { 0 }, e = { 0 };
  int code = run("/opt/arcbox/bin/busybox", script, NULL, 0, &o, &e);
  if (code != 0) fail(out, "internal", "loading the networking modules failed: %.*s", (int)e.len, e.data ? e.data + e.off : "");
}

static void worker(int out, struct command *cmds, int n) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_IGN);
  /* The relay runs at nice -10 (PID 1 starts it so); the datapath's tools need not. */
  if (getpriority(PRIO_PROCESS, 0) != 0) (void)!setpriority(PRIO_PROCESS, 0, 0);
  prepare(out);
  struct buf resp = { 0 };
  buf_append(&resp, "R", 1);
  for (int i = 0; i < n; i++) {
    char exe[4096], why[1024];
    if (look_path(cmds[i].argv[0], TOOL_ENV[0] + 5, exe, sizeof exe, why, sizeof why) < 0)
      fail(out, "unavailable", "%s is not installed in the machine's tools image: %s", cmds[i].argv[0], why);
    struct buf o = { 0 }, e = { 0 }, result = { 0 };
    int code = run(exe, cmds[i].argv, cmds[i].stdin_data, cmds[i].stdin_len, &o, &e);
    if (code < 0) fail(out, "internal", "network command %s: %s", cmds[i].argv[0], strerror(errno));
    pbw_varint(&result, 1, (uint64_t)(int64_t)code);
    if (o.len) pbw_bytes(&result, 2, o.data + o.off, o.len);
    if (e.len) pbw_bytes(&result, 3, e.data + e.off, e.len);
    pbw_bytes(&resp, 1, result.data ? result.data + result.off : "", result.len);
    free(o.data);
    free(e.data);
    free(result.data);
    if (code != 0 && !cmds[i].may_fail) break;
  }
  /* SAFETY: as in fail(): only a relay that is gone makes this fail. */
  (void)write_all(out, resp.data + resp.off, resp.len);
  _exit(0);
}

/* ---- in the relay ---- */

/* Whether `word` is one of the kernel command line's space-separated words. */
static int cmdline_has(const char *word) {
  char cmdline[4096];
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t r = read(fd, cmdline, sizeof cmdline - 1);
  close(fd);
  cmdline[r > 0 ? r : 0] = 0;
  char *save = NULL;
  for (char *w = strtok_r(cmdline, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
    if (!strcmp(w, word)) return 1;
  return 0;
}

void netcmd_request(uint64_t id, const unsigned char *body, size_t blen) {
  struct command cmds[MAX_COMMANDS];
  int n = 0, bad = 0;
  struct pb m = { body, body + blen };
  uint32_t field;
  uint64_t v;
  const unsigned char *d;
  size_t len;
  int r;
  while ((r = pb_next(&m, &field, &v, &d, &len)) == 0) {
    if (field != 2 || !d) continue;
    if (n == MAX_COMMANDS) { bad = 1; break; }
    if (parse_command(d, len, &cmds[n++]) < 0) { bad = 1; break; }
  }
  if (r < 0 || bad) {
    host_respond_error(id, "invalid_argument", "network commands: malformed request");
    goto out;
  }
  for (int i = 0; i < n; i++) {
    const char *name = cmds[i].argc ? cmds[i].argv[0] : "";
    if (!allowed(name)) {
      host_respond_error(id, "invalid_argument", "network command \"%.200s\" is not one the engine machine runs", name);
      goto out;
    }
  }
  if (nworkers == MAX_WORKERS) {
    host_respond_error(id, "unavailable", "too many network command runs at once (%d)", MAX_WORKERS);
    goto out;
  }
  if (under_tcg < 0) under_tcg = cmdline_has("arcbox.accel=tcg");
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    host_respond_error(id, "internal", "network commands: pipe: %s", strerror(errno));
    goto out;
  }
  pid_t pid = fork();
  if (pid < 0) {
    host_respond_error(id, "internal", "network commands: fork: %s", strerror(errno));
    close(p[0]);
    close(p[1]);
    goto out;
  }
  if (pid == 0) {
    close(p[0]);
    worker(p[1], cmds, n);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, O_NONBLOCK);
  struct worker *w = calloc(1, sizeof *w);
  if (!w) {
    /* The worker runs on; its answer is lost, and the host's call times out. */
    close(p[0]);
    goto out;
  }
  *w = (struct worker){ .req_id = id, .fd = p[0] };
  workers[nworkers++] = w;
out:
  free_commands(cmds, n);
}

int netcmd_poll_fill(struct pollfd *p, int max) {
  int n = 0;
  for (int i = 0; i < nworkers && n < max; i++) p[n++] = (struct pollfd){ workers[i]->fd, POLLIN, 0 };
  return n;
}

/* The worker's pipe ended: its answer is complete (or it died without one). */
static void answer(struct worker *w) {
  const char *a = w->answer.data ? w->answer.data + w->answer.off : "";
  size_t n = w->answer.len;
  if (n && a[0] == 'R') {
    struct buf body = { 0 };
    buf_append(&body, a + 1, n - 1);
    host_respond(w->req_id, &body);
    free(body.data);
  } else if (n > 1 && a[0] == 'E' && memchr(a + 1, 0, n - 1)) {
    const char *code = a + 1;
    size_t cl = strlen(code);
    host_respond_error(w->req_id, code, "%.*s", (int)(n - 2 - cl), code + cl + 1);
  } else host_respond_error(w->req_id, "internal", "network commands: the worker ended without an answer");
}

void netcmd_poll_done(const struct pollfd *p, int n) {
  static char data[65536];
  for (int k = 0; k < n; k++) {
    if (!p[k].revents) continue;
    for (int i = 0; i < nworkers; i++) {
      struct worker *w = workers[i];
      if (w->fd != p[k].fd) continue;
      ssize_t r = read(w->fd, data, sizeof data);
      if (r > 0) buf_append(&w->answer, data, (size_t)r);
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        answer(w);
        close(w->fd);
        free(w->answer.data);
        free(w);
        workers[i] = workers[--nworkers];
      }
      break;
    }
  }
}
