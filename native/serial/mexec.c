/*
 * Machine execs run by the relay itself (`arcbox machine exec`; guest/README.md, "The
 * relay's own machine execs"): processes in the machine, as root with the relay's
 * capabilities, each in a session of its own, with a pty or pipes for its stdio. The
 * relay forks and execs them directly and turns their output into io frames.
 *
 * Why here and not in the agent: the relay is up ~0.1 s after PID 1 starts, the agent
 * (Bun without a JIT under TCG) 3-4 s later, so a machine answers its first exec seconds
 * sooner; and why not under the shim, as the agent runs them on a host: the shim's own
 * exec (loader, libc) was most of a warm exec's time in the guest (64 of 80 ms under
 * TCG), and the relay, as its only client, needs none of its attach machinery.
 *
 * Requests: machineExec, machineExecResize, machineExecSignal (MachineService, protobuf
 * bodies). Frames out: the response (with the pid, once the exec has happened, or the
 * reason it could not), io frames (fd 1/2, then eof), and a machine_exec_exit
 * RuntimeEvent after the last output frame.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"
#include "../common/exec-path.h"

#define MAX_EXECS 256
#define CHUNK 65536
/* After the process exits, output still held open by a process it left behind gets this
 * long (each bit of progress restarts it) before the exec ends without it, as the shim's. */
#define DRAIN_MS 2000

enum phase { STARTING, RUNNING };

struct mexec {
  char id[129];
  enum phase phase;
  uint64_t req_id; /* the machineExec call, answered once the exec has happened */
  int tty, stdin_open;
  pid_t pid;
  int err_fd; /* STARTING: the child's exec-error pipe (end of file: it exec'd) */
  struct buf err;
  int out[3]; /* readable output by stream number; a TTY has only out[1] (the master) */
  int in_fd; /* the process's stdin (pipe or master), with stdin open */
  struct buf to_proc; /* stdin bytes not yet taken */
  int stdin_eof; /* 1: end stdin once to_proc is drained; 2: done */
  int exited, status;
  long long drain_deadline; /* exited with output still open: give up on it then */
};

static struct mexec *execs[MAX_EXECS];
static int nexecs;

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- frames to the host ---- */

static void io_frame(const struct mexec *e, int fd, const void *data, size_t n, int eof) {
  struct buf f = { 0 };
  mpw_map(&f, 4);
  mpw_cstr(&f, "k"); mpw_cstr(&f, "io");
  mpw_cstr(&f, "sid"); mpw_cstr(&f, e->id);
  mpw_cstr(&f, "fd"); mpw_uint(&f, (uint64_t)fd);
  if (eof) { mpw_cstr(&f, "eof"); mpw_bool(&f, 1); }
  else { mpw_cstr(&f, "data"); mpw_bin(&f, data, n); }
  host_frame(&f);
  free(f.data);
}

static void exit_event(const struct mexec *e, int code) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct buf ev = { 0 }, f = { 0 };
  pbw_bytes(&ev, 1, "machine_exec_exit", 17);
  pbw_bytes(&ev, 3, e->id, strlen(e->id));
  pbw_varint(&ev, 4, (uint64_t)(int64_t)code); /* int32: negatives sign-extended */
  pbw_varint(&ev, 5, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
  mpw_map(&f, 2);
  mpw_cstr(&f, "k"); mpw_cstr(&f, "evt");
  mpw_cstr(&f, "body"); mpw_bin(&f, ev.data, ev.len);
  host_frame(&f);
  free(ev.data);
  free(f.data);
}

/* ---- set-up ---- */

int mexec_is_method(const char *m, uint32_t n) {
  return (n == 11 && !memcmp(m, "machineExec", 11)) || (n == 17 && !memcmp(m, "machineExecResize", 17)) || (n == 17 && !memcmp(m, "machineExecSignal", 17));
}

static struct mexec *find(const char *id, size_t n) {
  for (int i = 0; i < nexecs; i++)
    if (strlen(execs[i]->id) == n && !memcmp(execs[i]->id, id, n)) return execs[i];
  return NULL;
}

int mexec_owns(const char *sid, uint32_t n) { return find(sid, n) != NULL; }

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void drop(struct mexec *e) {
  for (int i = 0; i < nexecs; i++)
    if (execs[i] == e) { execs[i] = execs[--nexecs]; break; }
  close_fd(&e->err_fd);
  close_fd(&e->out[1]);
  close_fd(&e->out[2]);
  if (e->in_fd >= 0 && e->in_fd != e->out[1]) close(e->in_fd);
  free(e->err.data);
  free(e->to_proc.data);
  free(e);
}

static int valid_id(const char *s, size_t n) {
  if (n < 1 || n > 128 || !isalnum((unsigned char)s[0])) return 0;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return 0;
  return 1;
}

/* The request's strings as a NULL-terminated array (args, env) with the defaults added. */
struct strv { char **v; int n, cap; };

static void strv_add(struct strv *a, const char *s, size_t n) {
  if (a->n + 2 > a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    char **v = realloc(a->v, (size_t)a->cap * sizeof *v);
    if (!v) { perror("arcbox-serial-relay: realloc"); exit(1); }
    a->v = v;
  }
  a->v[a->n] = strndup(s, n);
  if (!a->v[a->n]) { perror("arcbox-serial-relay: strndup"); exit(1); }
  a->v[++a->n] = NULL;
}

static void strv_free(struct strv *a) {
  for (int i = 0; i < a->n; i++) free(a->v[i]);
  free(a->v);
}

/* In the forked child: its stdio, session and directory, then the exec. Returns only on
 * failure, with the reason written to err_w for the relay. */
static void child(int err_w, int tty_slave, const int pipes[3], const char *cwd, const struct strv *args, const struct strv *env) {
  char why[1024];
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  /* The relay runs at nice -10 (PID 1 starts it so); the user's process does not. */
  if (getpriority(PRIO_PROCESS, 0) != 0) (void)!setpriority(PRIO_PROCESS, 0, 0);
  if (setsid() < 0) { snprintf(why, sizeof why, "setsid: %s", strerror(errno)); goto fail; }
  if (tty_slave >= 0) {
    if (ioctl(tty_slave, TIOCSCTTY, 0) < 0) { snprintf(why, sizeof why, "set controlling terminal: %s", strerror(errno)); goto fail; }
    dup2(tty_slave, 0); dup2(tty_slave, 1); dup2(tty_slave, 2);
  } else {
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(pipes[0] >= 0 ? pipes[0] : devnull, 0);
    dup2(pipes[1], 1);
    dup2(pipes[2], 2);
  }
  if (chdir(cwd) < 0) { snprintf(why, sizeof why, "chdir to %.900s: %s", cwd, strerror(errno)); goto fail; }
  char exe[4096];
  if (look_path(args->v[0], env_lookup(env->v, env->n, "PATH"), exe, sizeof exe, why, sizeof why) < 0) goto fail;
  execve(exe, args->v, env->v);
  snprintf(why, sizeof why, "exec: \"%s\": %s", args->v[0], strerror(errno));
fail:
  /* SAFETY: the relay reads this pipe to the end; a short write only shortens the reason. */
  (void)!write(err_w, why, strlen(why));
  _exit(127);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void start(uint64_t req_id, const unsigned char *body, size_t blen) {
  const char *id = NULL, *cwd_p = NULL;
  size_t id_len = 0, cwd_len = 0;
  int tty = 0, stdin_open = 0;
  uint64_t rows = 0, cols = 0;
  struct strv args = { 0 }, env = { 0 };
  int has_path = 0, has_term = 0, has_home = 0;
  struct pb m = { body, body + blen };
  uint32_t field;
  uint64_t v;
  const unsigned char *d;
  size_t n;
  int r;
  while ((r = pb_next(&m, &field, &v, &d, &n)) == 0) {
    if (d && memchr(d, 0, n) && (field == 3 || field == 4 || field == 5)) {
      host_respond_error(req_id, "invalid_argument", "machine exec: arguments, environment and directory cannot contain NUL bytes");
      goto out;
    }
    if (field == 2 && d) { id = (const char *)d; id_len = n; }
    if (field == 3 && d) strv_add(&args, (const char *)d, n);
    if (field == 4 && d) {
      has_path |= n >= 5 && !memcmp(d, "PATH=", 5);
      has_term |= n >= 5 && !memcmp(d, "TERM=", 5);
      has_home |= n >= 5 && !memcmp(d, "HOME=", 5);
      strv_add(&env, (const char *)d, n);
    }
    if (field == 5 && d && n) { cwd_p = (const char *)d; cwd_len = n; }
    if (field == 6 && !d) tty = v != 0;
    if (field == 7 && !d) rows = v;
    if (field == 8 && !d) cols = v;
    if (field == 9 && !d) stdin_open = v != 0;
  }
  if (r < 0) { host_respond_error(req_id, "invalid_argument", "machine exec: malformed request"); goto out; }
  if (!id || !valid_id(id, id_len)) { host_respond_error(req_id, "invalid_argument", "invalid exec id \"%.*s\"", (int)(id_len > 128 ? 128 : id_len), id ? id : ""); goto out; }
  if (!args.n) { host_respond_error(req_id, "invalid_argument", "no command specified"); goto out; }
  if (find(id, id_len)) { host_respond_error(req_id, "already_exists", "machine exec %.*s already exists", (int)id_len, id); goto out; }
  if (nexecs == MAX_EXECS) { host_respond_error(req_id, "unavailable", "too many machine execs at once (%d)", MAX_EXECS); goto out; }
  /* PATH, TERM (with a TTY) and HOME defaults, as encodeMachineExecSpec. */
  static const char DEFAULT_PATH[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/arcbox/bin";
  if (!has_path) strv_add(&env, DEFAULT_PATH, sizeof DEFAULT_PATH - 1);
  if (tty && !has_term) strv_add(&env, "TERM=xterm", 10);
  if (!has_home) strv_add(&env, "HOME=/root", 10);
  char cwd[4096];
  snprintf(cwd, sizeof cwd, "%.*s", cwd_p ? (int)cwd_len : 1, cwd_p ? cwd_p : "/");

  struct mexec *e = calloc(1, sizeof *e);
  if (!e) { host_respond_error(req_id, "internal", "out of memory"); goto out; }
  memcpy(e->id, id, id_len);
  e->req_id = req_id;
  e->tty = tty;
  e->stdin_open = stdin_open;
  e->err_fd = e->out[0] = e->out[1] = e->out[2] = e->in_fd = -1;
  int errp[2] = { -1, -1 }, in[2] = { -1, -1 }, o[2] = { -1, -1 }, x[2] = { -1, -1 }, slave = -1;
  const char *step = "pipe";
  if (pipe2(errp, O_CLOEXEC) < 0) goto fail;
  if (tty) {
    step = "open /dev/ptmx";
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) goto fail;
    e->out[1] = master;
    if (unlockpt(master) < 0 || (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) goto fail;
    if (rows && cols) {
      struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
      ioctl(master, TIOCSWINSZ, &ws);
    }
    if (stdin_open) e->in_fd = master;
  } else {
    if ((stdin_open && pipe2(in, O_CLOEXEC) < 0) || pipe2(o, O_CLOEXEC) < 0 || pipe2(x, O_CLOEXEC) < 0) goto fail;
    e->out[1] = o[0];
    e->out[2] = x[0];
    e->in_fd = in[1];
  }
  step = "fork";
  pid_t pid = fork();
  if (pid < 0) goto fail;
  if (pid == 0) {
    const int pipes[3] = { in[0], o[1], x[1] };
    child(errp[1], slave, pipes, cwd, &args, &env);
  }
  close(errp[1]);
  close_fd(&slave);
  close_fd(&in[0]);
  close_fd(&o[1]);
  close_fd(&x[1]);
  e->pid = pid;
  e->err_fd = errp[0];
  set_nonblock(e->err_fd);
  for (int s = 1; s <= 2; s++) if (e->out[s] >= 0) set_nonblock(e->out[s]);
  if (e->in_fd >= 0) set_nonblock(e->in_fd);
  e->phase = STARTING;
  execs[nexecs++] = e;
  goto out;
fail:
  host_respond_error(req_id, "internal", "machine exec %s: cannot start: %s: %s", e->id, step, strerror(errno));
  close_fd(&errp[0]); close_fd(&errp[1]); close_fd(&slave);
  close_fd(&in[0]); close_fd(&in[1]); close_fd(&o[1]); close_fd(&x[1]);
  close_fd(&e->out[1]); close_fd(&e->out[2]);
  free(e);
out:
  strv_free(&args);
  strv_free(&env);
}

/* classifyRuncError's rules for the process's own executable (guest/platform/runc.ts). */
static const char *start_error_code(const char *msg) {
  const char *x = strstr(msg, "exec: \"");
  if (!x) return "internal";
  if (strcasestr(x, "executable file not found") || strcasestr(x, "no such file or directory")) return "not_found";
  if (strcasestr(x, "permission denied") || strcasestr(x, "is a directory")) return "permission_denied";
  return "internal";
}

/* The exec-error pipe: end of file once the child has exec'd (or died), else its reason. */
static void on_started(struct mexec *e) {
  char data[512];
  for (;;) {
    ssize_t r = read(e->err_fd, data, sizeof data);
    if (r > 0) { buf_append(&e->err, data, (size_t)r); continue; }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return;
    break;
  }
  close_fd(&e->err_fd);
  if (e->err.len) {
    char msg[1100];
    snprintf(msg, sizeof msg, "%.*s", (int)(e->err.len > 1024 ? 1024 : e->err.len), e->err.data + e->err.off);
    host_respond_error(e->req_id, start_error_code(msg), "%s", msg);
    drop(e); /* the child exits 127; the relay's SIGCHLD reaps it */
    return;
  }
  e->phase = RUNNING;
  struct buf body = { 0 };
  pbw_varint(&body, 1, (uint64_t)(int64_t)e->pid);
  host_respond(e->req_id, &body);
  free(body.data);
}

static void finish(struct mexec *e) {
  io_frame(e, 1, NULL, 0, 1);
  if (!e->tty) io_frame(e, 2, NULL, 0, 1);
  int st = e->status;
  exit_event(e, WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 255);
  drop(e);
}

static void maybe_finish(struct mexec *e) {
  if (e->phase == RUNNING && e->exited && e->out[1] < 0 && e->out[2] < 0) finish(e);
}

void mexec_reaped(pid_t pid, int status) {
  for (int i = 0; i < nexecs; i++) {
    struct mexec *e = execs[i];
    if (e->pid != pid) continue;
    e->exited = 1;
    e->status = status;
    e->drain_deadline = now_ms() + DRAIN_MS;
    maybe_finish(e);
    return;
  }
}

static void end_stdin(struct mexec *e) {
  e->stdin_eof = 2;
  /* A pty cannot be half-closed: EOF (^D) goes to the line discipline instead. */
  if (e->tty) { if (e->in_fd >= 0) (void)!write(e->in_fd, "\x04", 1); return; }
  close_fd(&e->in_fd);
}

static void flush_stdin(struct mexec *e) {
  while (e->to_proc.len && e->in_fd >= 0) {
    ssize_t w = write(e->in_fd, e->to_proc.data + e->to_proc.off, e->to_proc.len);
    if (w > 0) { buf_consume(&e->to_proc, (size_t)w); continue; }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
    buf_clear(&e->to_proc); /* nobody reads it any more */
  }
  if (e->stdin_eof == 1) end_stdin(e);
}

void mexec_io(const unsigned char *frame, size_t n) {
  struct mp m = { frame, frame + n };
  uint32_t keys, kn, sn = 0, dn = 0;
  const char *k, *sid = NULL;
  const unsigned char *data = NULL;
  uint64_t fd = 0;
  int eof = 0;
  if (mp_map(&m, &keys)) return;
  for (uint32_t i = 0; i < keys; i++) {
    if (mp_str(&m, &k, &kn)) return;
    int bad = 0;
    if (kn == 3 && !memcmp(k, "sid", 3)) bad = mp_str(&m, &sid, &sn);
    else if (kn == 2 && !memcmp(k, "fd", 2)) bad = mp_uint(&m, &fd);
    else if (kn == 4 && !memcmp(k, "data", 4)) bad = mp_bin(&m, &data, &dn);
    else if (kn == 3 && !memcmp(k, "eof", 3)) bad = mp_bool(&m, &eof);
    else bad = mp_skip(&m);
    if (bad) return;
  }
  struct mexec *e = sid ? find(sid, sn) : NULL;
  if (!e || fd != 0 || !e->stdin_open || e->stdin_eof) return;
  if (data && dn) buf_append(&e->to_proc, data, dn);
  if (eof) e->stdin_eof = 1;
  if (e->phase == RUNNING) flush_stdin(e);
}

static int parse_signal(const unsigned char *s, size_t n) {
  char name[32];
  if (!n || n >= sizeof name) return -1;
  memcpy(name, s, n);
  name[n] = 0;
  char *end;
  long num = strtol(name, &end, 10);
  if (!*end) return num > 0 && num < 65 ? (int)num : -1;
  const char *bare = strncasecmp(name, "SIG", 3) ? name : name + 3;
  static const struct { const char *name; int sig; } table[] = {
    { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL }, { "TRAP", SIGTRAP },
    { "ABRT", SIGABRT }, { "IOT", SIGIOT }, { "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
    { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
    { "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP },
    { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU },
    { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
    { "POLL", SIGPOLL }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (!strcasecmp(bare, table[i].name)) return table[i].sig;
  return -1;
}

/* machineExecResize and machineExecSignal: exec_id is field 2 of both. */
static void control(uint64_t req_id, int resize, const unsigned char *body, size_t blen) {
  struct pb m = { body, body + blen };
  uint32_t field;
  uint64_t v, rows = 0, cols = 0;
  const unsigned char *d, *sig = NULL;
  const char *id = "";
  size_t n, id_len = 0, sig_len = 0;
  while (pb_next(&m, &field, &v, &d, &n) == 0) {
    if (field == 2 && d) { id = (const char *)d; id_len = n; }
    if (resize && field == 3 && !d) rows = v;
    if (resize && field == 4 && !d) cols = v;
    if (!resize && field == 3 && d) { sig = d; sig_len = n; }
  }
  struct mexec *e = find(id, id_len);
  int shown = (int)(id_len > 128 ? 128 : id_len);
  if (!e) { host_respond_error(req_id, "not_found", "no such machine exec: %.*s", shown, id); return; }
  if (e->phase != RUNNING) { host_respond_error(req_id, "failed_precondition", "machine exec %s is still starting", e->id); return; }
  if (resize) {
    if (!e->tty) { host_respond_error(req_id, "failed_precondition", "machine exec %s has no TTY", e->id); return; }
    if (e->out[1] < 0) { host_respond_error(req_id, "failed_precondition", "the process is not running"); return; }
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    /* SAFETY: TIOCSWINSZ on our own pty master; it fails only for a closed terminal. */
    (void)ioctl(e->out[1], TIOCSWINSZ, &ws);
  } else {
    int s = parse_signal(sig, sig_len);
    if (s < 0) { host_respond_error(req_id, "invalid_argument", "invalid signal \"%.*s\"", (int)(sig_len > 31 ? 31 : sig_len), sig ? (const char *)sig : ""); return; }
    if (!e->exited && kill(e->pid, s) < 0 && errno != ESRCH) { host_respond_error(req_id, "invalid_argument", "cannot send signal %d to machine exec %s: %s", s, e->id, strerror(errno)); return; }
  }
  host_respond(req_id, NULL);
}

void mexec_request(uint64_t id, const char *method, uint32_t mlen, const unsigned char *body, size_t blen) {
  if (mlen == 11) start(id, body, blen);
  else control(id, mlen == 17 && !memcmp(method, "machineExecResize", 17), body, blen);
}

/* Poll entries: per exec its error pipe (starting), or its outputs and stdin (running). */
int mexec_poll_fill(struct pollfd *p, int max) {
  int n = 0, room = host_backlog() < RELAY_BUF_MAX;
  for (int i = 0; i < nexecs && n + 3 <= max; i++) {
    struct mexec *e = execs[i];
    if (e->phase == STARTING) { p[n++] = (struct pollfd){ e->err_fd, POLLIN, 0 }; continue; }
    for (int s = 1; s <= 2; s++)
      if (e->out[s] >= 0) p[n++] = (struct pollfd){ e->out[s], room ? POLLIN : 0, 0 };
    if (e->to_proc.len && e->in_fd >= 0) p[n++] = (struct pollfd){ e->in_fd, POLLOUT, 0 };
  }
  return n;
}

int mexec_timeout_ms(void) {
  long long soonest = -1, now = now_ms();
  for (int i = 0; i < nexecs; i++)
    if (execs[i]->phase == RUNNING && execs[i]->exited && (soonest < 0 || execs[i]->drain_deadline < soonest)) soonest = execs[i]->drain_deadline;
  return soonest < 0 ? -1 : soonest <= now ? 0 : (int)(soonest - now);
}

static struct mexec *owner(int fd) {
  for (int i = 0; i < nexecs; i++) {
    struct mexec *e = execs[i];
    if (e->err_fd == fd || e->out[1] == fd || e->out[2] == fd || e->in_fd == fd) return e;
  }
  return NULL;
}

void mexec_poll_done(const struct pollfd *p, int n) {
  static char data[CHUNK];
  /* The table changes as execs end: match by fd, not by index. */
  for (int k = 0; k < n; k++) {
    if (!p[k].revents) continue;
    struct mexec *e = owner(p[k].fd);
    if (!e) continue;
    if (e->phase == STARTING) {
      if (p[k].fd == e->err_fd) on_started(e);
      continue;
    }
    if ((p[k].revents & (POLLOUT | POLLERR)) && p[k].fd == e->in_fd && e->to_proc.len) flush_stdin(e);
    for (int s = 1; s <= 2; s++) {
      if (p[k].fd != e->out[s] || !(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(e->out[s], data, sizeof data);
      if (r > 0) {
        io_frame(e, s, data, (size_t)r, 0);
        if (e->exited) e->drain_deadline = now_ms() + DRAIN_MS;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        /* End of file, or EIO from a pty whose last slave closed. */
        if (e->in_fd == e->out[s]) e->in_fd = -1;
        close_fd(&e->out[s]);
        maybe_finish(e);
        break;
      }
    }
  }
  /* Exited, with output still held open by what it left behind: end without it. */
  long long now = now_ms();
  for (int i = nexecs - 1; i >= 0; i--) {
    struct mexec *e = execs[i];
    if (e->phase != RUNNING || !e->exited || e->drain_deadline > now) continue;
    if (e->in_fd == e->out[1]) e->in_fd = -1;
    close_fd(&e->out[1]);
    close_fd(&e->out[2]);
    finish(e);
  }
}
