/*
 * Machine execs run by the relay itself (`arcbox machine exec`; guest/README.md, "The
 * relay's own machine execs"). Each process runs under the shim in "run" mode, exactly
 * as the guest agent runs one (guest/core/machine-exec.ts): the shim owns the pty, stdin
 * half-close, reaping and the exit file; here the shim's stdio socket becomes io frames.
 *
 * Why here and not in the agent: the relay is up ~0.1 s after stage 2 starts, the agent
 * (Bun without a JIT under TCG) 3-4 s later, so a machine answers its first exec seconds
 * sooner; and each exec costs no JavaScript in the guest.
 *
 * Requests: machineExec, machineExecResize, machineExecSignal (MachineService, protobuf
 * bodies). Frames out: the response, io frames (fd 1/2, then eof), and a
 * machine_exec_exit RuntimeEvent after the last output frame.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "relay.h"

#define MAX_EXECS 256
#define CHUNK 65536

enum phase { STARTING, RUNNING };

struct mexec {
  char id[129];
  char dir[200];
  enum phase phase;
  uint64_t req_id; /* the machineExec call answered when the shim reports */
  int tty, stdin_open;
  int pid;
  int verdict_fd; /* STARTING: the shim's "ok <pid>" / "err" line */
  char verdict[64];
  size_t verdict_len;
  int sock; /* RUNNING: the shim's stdio socket */
  struct buf to_proc; /* stdin bytes not yet taken by the shim */
  int stdin_eof; /* half-close once to_proc is drained */
  struct buf mux; /* without a TTY: a partial multiplexed frame from the shim */
};

static struct mexec *execs[MAX_EXECS];
static int nexecs;
static const char *exec_root, *shim_bin;
static char caps_hex[40] = "0";

/* ---- frames to the host ---- */

static void respond(uint64_t id, const struct buf *body) {
  struct buf f = { 0 };
  mpw_map(&f, 3);
  mpw_cstr(&f, "k"); mpw_cstr(&f, "res");
  mpw_cstr(&f, "id"); mpw_uint(&f, id);
  mpw_cstr(&f, "body"); mpw_bin(&f, body ? body->data + body->off : "", body ? body->len : 0);
  host_frame(&f);
  free(f.data);
}

static void respond_error(uint64_t id, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void respond_error(uint64_t id, const char *code, const char *fmt, ...) {
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

void mexec_init(const char *root, const char *shim) {
  exec_root = root;
  shim_bin = shim;
  mkdir(root, 0700);
  /* What the process may hold: the relay's bounding set, as the agent grants its own. */
  FILE *f = fopen("/proc/self/status", "re");
  char line[256];
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "CapBnd: %39s", caps_hex) == 1) break;
  if (f) fclose(f);
}

int mexec_is_method(const char *m, uint32_t n) {
  return (n == 11 && !memcmp(m, "machineExec", 11)) || (n == 17 && !memcmp(m, "machineExecResize", 17)) || (n == 17 && !memcmp(m, "machineExecSignal", 17));
}

static struct mexec *find(const char *id, size_t n) {
  for (int i = 0; i < nexecs; i++)
    if (strlen(execs[i]->id) == n && !memcmp(execs[i]->id, id, n)) return execs[i];
  return NULL;
}

int mexec_owns(const char *sid, uint32_t n) { return find(sid, n) != NULL; }

/* The exec's files: the spec, exit status, logs, the shim's sockets and ctl FIFO. */
static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d)))
      if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
  }
  rmdir(dir);
}

static void drop(struct mexec *e) {
  for (int i = 0; i < nexecs; i++)
    if (execs[i] == e) { execs[i] = execs[--nexecs]; break; }
  if (e->verdict_fd >= 0) close(e->verdict_fd);
  if (e->sock >= 0) close(e->sock);
  free(e->to_proc.data);
  free(e->mux.data);
  free(e);
}

static int valid_id(const char *s, size_t n) {
  if (n < 1 || n > 128 || !isalnum((unsigned char)s[0])) return 0;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i])) return 0;
  return 1;
}

static void spec_pair(struct buf *b, const char *k, const char *v, size_t vn) {
  buf_append(b, k, strlen(k) + 1);
  buf_append(b, v, vn);
  buf_append(b, "", 1);
}

static int has_prefix(const unsigned char *s, size_t n, const char *p) {
  size_t k = strlen(p);
  return n >= k && !memcmp(s, p, k);
}

/* The exec spec of native/shim/exec-direct.c, as encodeMachineExecSpec builds it. */
static int write_spec(const char *path, const unsigned char *body, size_t blen, int tty, uint64_t rows, uint64_t cols) {
  struct buf s = { 0 }, args = { 0 }, env = { 0 };
  const char *cwd = "/";
  size_t cwd_len = 1;
  int has_path = 0, has_term = 0, has_home = 0;
  struct pb m = { body, body + blen };
  uint32_t field;
  uint64_t v;
  const unsigned char *d;
  size_t n;
  while (pb_next(&m, &field, &v, &d, &n) == 0) {
    if (!d) continue;
    if (field == 3) spec_pair(&args, "arg", (const char *)d, n);
    if (field == 4) {
      has_path |= has_prefix(d, n, "PATH=");
      has_term |= has_prefix(d, n, "TERM=");
      has_home |= has_prefix(d, n, "HOME=");
      spec_pair(&env, "env", (const char *)d, n);
    }
    if (field == 5 && n) { cwd = (const char *)d; cwd_len = n; }
  }
  spec_pair(&s, "pid", "0", 1);
  spec_pair(&s, "uid", "0", 1);
  spec_pair(&s, "gid", "0", 1);
  spec_pair(&s, "cwd", cwd, cwd_len);
  spec_pair(&s, "caps", caps_hex, strlen(caps_hex));
  spec_pair(&s, "nnp", "0", 1);
  if (rows && cols) {
    char t[24];
    spec_pair(&s, "rows", t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)rows));
    spec_pair(&s, "cols", t, (size_t)snprintf(t, sizeof t, "%llu", (unsigned long long)cols));
  }
  static const char DEFAULT_PATH[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/arcbox/bin";
  if (!has_path) spec_pair(&s, "env", DEFAULT_PATH, sizeof DEFAULT_PATH - 1);
  buf_append(&s, env.data, env.len);
  if (tty && !has_term) spec_pair(&s, "env", "TERM=xterm", 10);
  if (!has_home) spec_pair(&s, "env", "HOME=/root", 10);
  buf_append(&s, args.data, args.len);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int ok = fd >= 0;
  for (size_t off = 0; ok && off < s.len;) {
    ssize_t w = write(fd, s.data + off, s.len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) ok = 0;
    else off += (size_t)w;
  }
  if (fd >= 0 && close(fd) != 0) ok = 0;
  free(s.data);
  free(args.data);
  free(env.data);
  return ok ? 0 : -1;
}

/* Starts the shim; its short-lived parent reports on verdict_fd and exits (the relay
 * reaps it on SIGCHLD; the shim itself detaches and is PID 1's to reap). */
static int spawn_shim(struct mexec *e) {
  char spec[256], stdio[256], console[256], log[256];
  snprintf(spec, sizeof spec, "%s/exec.spec", e->dir);
  snprintf(stdio, sizeof stdio, "%s/stdio.sock", e->dir);
  snprintf(console, sizeof console, "%s/console.sock", e->dir);
  snprintf(log, sizeof log, "%s/shim.log", e->dir);
  const char *argv[20];
  int a = 0;
  argv[a++] = shim_bin; argv[a++] = "run"; argv[a++] = e->id; argv[a++] = e->dir;
  argv[a++] = "--stdio"; argv[a++] = stdio; argv[a++] = "--console"; argv[a++] = console;
  argv[a++] = "--spec"; argv[a++] = spec;
  if (e->tty) argv[a++] = "--tty";
  if (e->stdin_open) argv[a++] = "--stdin";
  argv[a++] = "--stdin-once"; argv[a++] = "--hold";
  argv[a] = NULL;
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) { close(p[0]); close(p[1]); return -1; }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int nul = open("/dev/null", O_RDONLY);
    int lg = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    /* SAFETY: a failed dup2 leaves that stdio fd as the relay's; the shim still runs and
     * its verdict pipe (fd 1) is checked by the parent reading "ok". */
    if (nul >= 0) dup2(nul, 0);
    dup2(p[1], 1);
    if (lg >= 0) dup2(lg, 2);
    execv(shim_bin, (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  fcntl(p[0], F_SETFL, fcntl(p[0], F_GETFL) | O_NONBLOCK);
  e->verdict_fd = p[0];
  return 0;
}

static void start(uint64_t req_id, const unsigned char *body, size_t blen) {
  const char *id = NULL;
  size_t id_len = 0;
  int nargs = 0, tty = 0, stdin_open = 0;
  uint64_t rows = 0, cols = 0;
  struct pb m = { body, body + blen };
  uint32_t field;
  uint64_t v;
  const unsigned char *d;
  size_t n;
  int r;
  while ((r = pb_next(&m, &field, &v, &d, &n)) == 0) {
    if (d && memchr(d, 0, n) && (field == 3 || field == 4 || field == 5)) {
      respond_error(req_id, "invalid_argument", "machine exec: arguments, environment and directory cannot contain NUL bytes");
      return;
    }
    if (field == 2 && d) { id = (const char *)d; id_len = n; }
    if (field == 3 && d) nargs++;
    if (field == 6 && !d) tty = v != 0;
    if (field == 7 && !d) rows = v;
    if (field == 8 && !d) cols = v;
    if (field == 9 && !d) stdin_open = v != 0;
  }
  if (r < 0) { respond_error(req_id, "invalid_argument", "machine exec: malformed request"); return; }
  if (!id || !valid_id(id, id_len)) { respond_error(req_id, "invalid_argument", "invalid exec id \"%.*s\"", (int)(id_len > 128 ? 128 : id_len), id ? id : ""); return; }
  if (!nargs) { respond_error(req_id, "invalid_argument", "no command specified"); return; }
  if (find(id, id_len)) { respond_error(req_id, "already_exists", "machine exec %.*s already exists", (int)id_len, id); return; }
  if (nexecs == MAX_EXECS) { respond_error(req_id, "unavailable", "too many machine execs at once (%d)", MAX_EXECS); return; }
  struct mexec *e = calloc(1, sizeof *e);
  if (!e) { respond_error(req_id, "internal", "out of memory"); return; }
  memcpy(e->id, id, id_len);
  snprintf(e->dir, sizeof e->dir, "%s/%s", exec_root, e->id);
  e->req_id = req_id;
  e->tty = tty;
  e->stdin_open = stdin_open;
  e->verdict_fd = e->sock = -1;
  e->phase = STARTING;
  char spec[256];
  snprintf(spec, sizeof spec, "%s/exec.spec", e->dir);
  remove_dir(e->dir);
  if (mkdir(e->dir, 0700) < 0 || write_spec(spec, body, blen, tty, rows, cols) < 0 || spawn_shim(e) < 0) {
    respond_error(req_id, "internal", "machine exec %s: cannot start: %s", e->id, strerror(errno));
    remove_dir(e->dir);
    free(e);
    return;
  }
  execs[nexecs++] = e;
}

/* The message of the last error the process's start logged (runc.log's JSON lines, as
 * exec-direct.c writes them), else the shim's own last complaint. */
static void start_error(const struct mexec *e, char *out, size_t cap) {
  char path[256], line[2048];
  snprintf(out, cap, "the shim failed to start the process");
  snprintf(path, sizeof path, "%s/runc.log", e->dir);
  FILE *f = fopen(path, "re");
  int found = 0;
  while (f && fgets(line, sizeof line, f)) {
    char *msg = strstr(line, "\"msg\":\"");
    if (!strstr(line, "\"level\":\"error\"") || !msg) continue;
    size_t k = 0;
    for (char *s = msg + 7; *s && *s != '"' && k + 1 < cap; s++) {
      if (*s == '\\' && s[1]) {
        s++;
        char c = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'u' ? '?' : *s;
        if (*s == 'u') s += strlen(s) >= 5 ? 4 : 0;
        out[k++] = c;
      } else out[k++] = *s;
    }
    out[k] = 0;
    found = 1;
  }
  if (f) fclose(f);
  if (found) return;
  snprintf(path, sizeof path, "%s/shim.log", e->dir);
  f = fopen(path, "re");
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    if (*line) snprintf(out, cap, "%s", line);
  }
  if (f) fclose(f);
}

/* classifyRuncError's rules for the process's own executable (guest/platform/runc.ts). */
static const char *start_error_code(const char *msg) {
  const char *x = strstr(msg, "exec: \"");
  if (!x) return "internal";
  if (strcasestr(x, "executable file not found") || strcasestr(x, "no such file or directory")) return "not_found";
  if (strcasestr(x, "permission denied") || strcasestr(x, "is a directory")) return "permission_denied";
  return "internal";
}

static void on_verdict(struct mexec *e) {
  for (;;) {
    ssize_t r = read(e->verdict_fd, e->verdict + e->verdict_len, sizeof e->verdict - 1 - e->verdict_len);
    if (r > 0) { e->verdict_len += (size_t)r; if (e->verdict_len < sizeof e->verdict - 1 && !memchr(e->verdict, '\n', e->verdict_len)) continue; }
    else if (r < 0 && errno == EINTR) continue;
    else if (r < 0 && errno == EAGAIN) return;
    break; /* a line, a full buffer, or end of file */
  }
  e->verdict[e->verdict_len] = 0;
  close(e->verdict_fd);
  e->verdict_fd = -1;
  int pid;
  if (sscanf(e->verdict, "ok %d", &pid) != 1) {
    char msg[2048];
    start_error(e, msg, sizeof msg);
    respond_error(e->req_id, start_error_code(msg), "%s", msg);
    remove_dir(e->dir);
    drop(e);
    return;
  }
  e->pid = pid;
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  int n = snprintf(a.sun_path, sizeof a.sun_path, "%s/stdio.sock", e->dir);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (n >= (int)sizeof a.sun_path || s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
    respond_error(e->req_id, "internal", "machine exec %s: cannot reach its shim: %s", e->id, strerror(errno));
    if (s >= 0) close(s);
    kill(pid, SIGKILL);
    drop(e); /* the shim records the exit in its dir; nobody reads it */
    return;
  }
  fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
  e->sock = s;
  e->phase = RUNNING;
  struct buf body = { 0 };
  pbw_varint(&body, 1, (uint64_t)(int64_t)pid);
  respond(e->req_id, &body);
  free(body.data);
}

/* The shim's output: raw with a TTY, else Docker's multiplexed frames (8-byte header). */
static void on_output(struct mexec *e, const char *data, size_t n) {
  if (e->tty) { io_frame(e, 1, data, n, 0); return; }
  const char *p = data;
  size_t left = n;
  if (e->mux.len) {
    buf_append(&e->mux, data, n);
    p = e->mux.data + e->mux.off;
    left = e->mux.len;
  }
  size_t used = 0;
  while (left - used >= 8) {
    const unsigned char *h = (const unsigned char *)p + used;
    size_t len = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
    if (left - used < 8 + len) break;
    io_frame(e, h[0] == 2 ? 2 : 1, p + used + 8, len, 0);
    used += 8 + len;
  }
  if (e->mux.len) buf_consume(&e->mux, used);
  else buf_append(&e->mux, p + used, left - used);
}

static void finish(struct mexec *e) {
  io_frame(e, 1, NULL, 0, 1);
  if (!e->tty) io_frame(e, 2, NULL, 0, 1);
  int code = 255;
  char path[256], text[256] = "";
  snprintf(path, sizeof path, "%s/exit", e->dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r = read(fd, text, sizeof text - 1);
    if (r > 0) text[r] = 0;
    close(fd);
  }
  char *c = strstr(text, "\"exitCode\":");
  if (c) code = atoi(c + 11);
  exit_event(e, code);
  remove_dir(e->dir);
  drop(e);
}

static void flush_stdin(struct mexec *e) {
  while (e->to_proc.len) {
    ssize_t w = write(e->sock, e->to_proc.data + e->to_proc.off, e->to_proc.len);
    if (w > 0) { buf_consume(&e->to_proc, (size_t)w); continue; }
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) return;
    buf_clear(&e->to_proc); /* the shim is gone: the exit follows */
    return;
  }
  if (e->stdin_eof == 1) {
    /* Half-close: the shim closes the process's stdin (^D on a TTY), as docker's stdin-once. */
    shutdown(e->sock, SHUT_WR);
    e->stdin_eof = 2;
  }
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
  if (e->sock >= 0) flush_stdin(e);
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
  if (!e) { respond_error(req_id, "not_found", "no such machine exec: %.*s", shown, id); return; }
  if (e->phase != RUNNING) { respond_error(req_id, "failed_precondition", "machine exec %s is still starting", e->id); return; }
  if (resize) {
    if (!e->tty) { respond_error(req_id, "failed_precondition", "machine exec %s has no TTY", e->id); return; }
    char path[256], cmd[64];
    snprintf(path, sizeof path, "%s/ctl", e->dir);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { respond_error(req_id, "failed_precondition", "the process is not running"); return; }
    int k = snprintf(cmd, sizeof cmd, "resize %u %u\n", (unsigned)(rows & 0xffff), (unsigned)(cols & 0xffff));
    /* SAFETY: one short line to the shim's control FIFO; a lost resize is harmless. */
    (void)!write(fd, cmd, (size_t)k);
    close(fd);
  } else {
    int s = parse_signal(sig, sig_len);
    if (s < 0) { respond_error(req_id, "invalid_argument", "invalid signal \"%.*s\"", (int)(sig_len > 31 ? 31 : sig_len), sig ? (const char *)sig : ""); return; }
    if (kill(e->pid, s) < 0 && errno != ESRCH) { respond_error(req_id, "invalid_argument", "cannot send signal %d to machine exec %s: %s", s, e->id, strerror(errno)); return; }
  }
  respond(req_id, NULL);
}

void mexec_request(uint64_t id, const char *method, uint32_t mlen, const unsigned char *body, size_t blen) {
  if (mlen == 11) start(id, body, blen);
  else control(id, mlen == 17 && !memcmp(method, "machineExecResize", 17), body, blen);
}

int mexec_poll_fill(struct pollfd *p, int max) {
  int n = 0, room = host_backlog() < RELAY_BUF_MAX;
  for (int i = 0; i < nexecs && n < max; i++) {
    struct mexec *e = execs[i];
    if (e->phase == STARTING) p[n++] = (struct pollfd){ e->verdict_fd, POLLIN, 0 };
    else p[n++] = (struct pollfd){ e->sock, (short)((room ? POLLIN : 0) | (e->to_proc.len ? POLLOUT : 0)), 0 };
  }
  return n;
}

void mexec_poll_done(const struct pollfd *p, int n) {
  static char data[CHUNK];
  /* The table changes as execs end: match by fd, not by index. */
  for (int k = 0; k < n; k++) {
    if (!p[k].revents) continue;
    struct mexec *e = NULL;
    for (int i = 0; i < nexecs && !e; i++)
      if ((execs[i]->phase == STARTING ? execs[i]->verdict_fd : execs[i]->sock) == p[k].fd) e = execs[i];
    if (!e) continue;
    if (e->phase == STARTING) { on_verdict(e); continue; }
    if (p[k].revents & POLLOUT) flush_stdin(e);
    if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(e->sock, data, sizeof data);
      if (r > 0) on_output(e, data, (size_t)r);
      else if (r == 0 || (errno != EAGAIN && errno != EINTR)) finish(e);
    }
  }
}

/* The host's session ended: nobody is left to read these execs' output or exit. The
 * processes run on; closing the stdio connection closes their stdin (stdin-once). */
void mexec_host_gone(void) {
  while (nexecs) {
    /* A starting shim still reads its spec: that exec's files stay. */
    if (execs[0]->phase == RUNNING) remove_dir(execs[0]->dir);
    drop(execs[0]);
  }
}
