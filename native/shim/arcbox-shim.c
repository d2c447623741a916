/*
 * arcbox-shim: one small process per container (and per exec). It starts runc
 * (`runc create` for a container's init) or an exec (joining the container itself,
 * exec-direct.c, or through `runc exec -d`), then detaches
 * into its own session as a child subreaper so the process outlives the guest agent,
 * vmm, apid and the supervisor. It holds the process's stdio: writes output to the
 * json-file log, serves a stdio Unix socket for attach (framing: guest/README.md),
 * reaps the process, writes the exit status to <state>/exit and tells the agent.
 *
 * Usage: arcbox-shim create|exec|run ID STATE_DIR [options]
 *   run: a machine exec (a process in the machine itself, not in a container): needs
 *        --spec with pid 0; same stdio socket, TTY, exit file and notification.
 *        arcbox-shim start FIFO PID   (start a created container: start-fifo.c)
 *        arcbox-shim start-write FIFO PID   (the same for crun's FIFO, read by the init)
 *   --runc PATH --root DIR      runc binary and its --root
 *   --bundle DIR                (create) OCI bundle
 *   --container ID --process F  (exec) container to exec in, process.json
 *   --spec F                    (exec) join the container directly (exec-direct.c), no runc
 *   --stdio SOCK --console SOCK --notify SOCK --log FILE --oom-control FILE
 *   --tty --stdin --stdin-once
 *   --hold   keep output produced before the first client connects, and wait (bounded)
 *            for that client after exit (execs started for an attach)
 * The first line on stdout is "ok <pid>" or "err" (then runc's log has the reason).
 */
#include "shim.h"

struct options opt;

/* --- process lifecycle --- */

#define MAX_REAPED 32
static struct { pid_t pid; int status; } reaped[MAX_REAPED];
static int nreaped;

static void reap_all(void) {
  int st; pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
    if (nreaped < MAX_REAPED) { reaped[nreaped].pid = p; reaped[nreaped].status = st; nreaped++; }
    else { memmove(reaped, reaped + 1, sizeof reaped[0] * (MAX_REAPED - 1)); reaped[MAX_REAPED - 1].pid = p; reaped[MAX_REAPED - 1].status = st; }
  }
}

static int find_reaped(pid_t pid, int *status) {
  for (int i = 0; i < nreaped; i++) if (reaped[i].pid == pid) { *status = reaped[i].status; return 1; }
  return 0;
}

int recv_fd(int sock) {
  char data[256], cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = { data, sizeof data };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  if (recvmsg(sock, &m, MSG_CMSG_CLOEXEC) < 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static pid_t read_pid_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long pid = -1;
  if (fscanf(f, "%ld", &pid) != 1) pid = -1;
  fclose(f);
  return (pid_t)pid;
}

static int read_oom_kill(void) {
  if (!opt.oom_path) return 0;
  FILE *f = fopen(opt.oom_path, "r");
  if (!f) return 0;
  char key[64]; long long v; int oom = 0;
  while (fscanf(f, "%63s %lld", key, &v) == 2) if (strcmp(key, "oom_kill") == 0 && v > 0) oom = 1;
  fclose(f);
  return oom;
}

/* The exit status as last recorded, also sent with the notification: when the disk is
 * full the file cannot be written, and the agent keeps the status from the message. */
static int exit_code = 255, exit_oom = 0;
static long long exit_ns = 0;

static void write_exit_file(int status) {
  exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 255;
  char ts[64], path[4096], tmp[4096], body[256];
  rfc3339_now(ts, sizeof ts, &exit_ns);
  exit_oom = read_oom_kill();
  snprintf(path, sizeof path, "%s/exit", opt.state);
  snprintf(tmp, sizeof tmp, "%s/exit.tmp", opt.state);
  int n = snprintf(body, sizeof body, "{\"exitCode\":%d,\"finishedAtUnixNano\":%lld,\"oomKilled\":%s}\n", exit_code, exit_ns, exit_oom ? "true" : "false");
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  int ok = write_all(fd, body, (size_t)n) == 0;
  /* SAFETY: close's result is checked: a deferred write error (ENOSPC) shows up here. */
  if (close(fd) != 0) ok = 0;
  /* Never publish an empty or partial status (it would read as 255): on a full disk the
   * agent gets the status from the notification instead. */
  if (!ok) { unlink(tmp); return; }
  /* Atomic: readers never see half a status. No fsync (2-4 ms on every exit): after a
   * host crash the container is gone anyway, and an unreadable status reads as 255. */
  rename(tmp, path);
}

static void notify_agent(void) {
  if (!opt.notify_path) return;
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  if (strlen(opt.notify_path) >= sizeof a.sun_path) return;
  strcpy(a.sun_path, opt.notify_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  /* The agent may be down (restarting): it then reconciles from the exit file. */
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "exit %s %s %d %lld %d\n", opt.mode, opt.id, exit_code, exit_ns, exit_oom);
    write_all(fd, msg, (size_t)n);
  }
  close(fd);
}

static void parse_args(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: arcbox-shim create|exec|run ID STATE_DIR [options]\n"); exit(2); }
  opt.mode = argv[1]; opt.id = argv[2]; opt.state = argv[3];
  opt.runc = "runc";
  for (int i = 4; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field) if (strcmp(a, name) == 0 && v) { opt.field = v; i++; continue; }
    OPT("--runc", runc) OPT("--root", root) OPT("--bundle", bundle) OPT("--container", container)
    OPT("--process", process) OPT("--stdio", stdio_path) OPT("--console", console_path)
    OPT("--notify", notify_path) OPT("--spec", spec) OPT("--log", log_path) OPT("--oom-control", oom_path)
#undef OPT
    if (strcmp(a, "--tty") == 0) { opt.tty = 1; continue; }
    if (strcmp(a, "--stdin") == 0) { opt.stdin_open = 1; continue; }
    if (strcmp(a, "--stdin-once") == 0) { opt.stdin_once = 1; continue; }
    if (strcmp(a, "--hold") == 0) { opt.hold = 1; continue; }
    fprintf(stderr, "arcbox-shim: unknown option %s\n", a);
    exit(2);
  }
  if (strcmp(opt.mode, "create") && strcmp(opt.mode, "exec") && strcmp(opt.mode, "run")) { fprintf(stderr, "arcbox-shim: bad mode\n"); exit(2); }
  if (strcmp(opt.mode, "run") == 0 && !opt.spec) { fprintf(stderr, "arcbox-shim: run needs --spec\n"); exit(2); }
  if ((!opt.root && !opt.spec) || !opt.stdio_path || (opt.tty && !opt.console_path)) { fprintf(stderr, "arcbox-shim: missing options\n"); exit(2); }
}

/* Runs runc; returns its wait status. `console` receives the pty master for TTY processes. */
static int run_runc(int sfd, int in_r, int out_w, int err_w, int *master) {
  char pidfile[4096], runclog[4096];
  snprintf(pidfile, sizeof pidfile, "%s/pid", opt.state);
  snprintf(runclog, sizeof runclog, "%s/runc.log", opt.state);
  unlink(pidfile);
  int console_fd = opt.tty ? unix_listen(opt.console_path) : -1;
  const char *args[32];
  int n = 0;
  args[n++] = opt.runc; args[n++] = "--root"; args[n++] = opt.root;
  args[n++] = "--log"; args[n++] = runclog; args[n++] = "--log-format"; args[n++] = "json";
  if (strcmp(opt.mode, "create") == 0) {
    args[n++] = "create"; args[n++] = "--bundle"; args[n++] = opt.bundle;
  } else {
    args[n++] = "exec"; args[n++] = "-d"; args[n++] = "--process"; args[n++] = opt.process;
  }
  args[n++] = "--pid-file"; args[n++] = pidfile;
  if (opt.tty) { args[n++] = "--console-socket"; args[n++] = opt.console_path; }
  args[n++] = strcmp(opt.mode, "create") == 0 ? opt.id : opt.container;
  args[n] = NULL;

  pid_t runc = fork();
  if (runc < 0) die("fork");
  if (runc == 0) {
    sigset_t none; sigemptyset(&none); sigprocmask(SIG_SETMASK, &none, NULL);
    int devnull = open("/dev/null", O_RDWR);
    dup2(in_r >= 0 ? in_r : devnull, 0);
    dup2(out_w >= 0 ? out_w : devnull, 1);
    dup2(err_w >= 0 ? err_w : devnull, 2);
    execvp(args[0], (char *const *)args);
    _exit(127);
  }
  if (in_r >= 0) close(in_r);
  if (out_w >= 0) close(out_w);
  if (err_w >= 0) close(err_w);

  int status = -1, done = 0;
  while (!done) {
    struct pollfd p[2] = { { sfd, POLLIN, 0 }, { console_fd, POLLIN, 0 } };
    if (poll(p, console_fd >= 0 ? 2 : 1, -1) < 0) { if (errno == EINTR) continue; die("poll"); }
    if (console_fd >= 0 && (p[1].revents & POLLIN)) {
      int conn = accept4(console_fd, NULL, NULL, SOCK_CLOEXEC);
      if (conn >= 0) { *master = recv_fd(conn); close(conn); }
    }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {}
      reap_all();
      done = find_reaped(runc, &status);
    }
  }
  if (console_fd >= 0) { close(console_fd); unlink(opt.console_path); }
  return status;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "start") == 0) return start_container(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "start-write") == 0) return start_container_writer(argc, argv);
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);

  int ready[2];
  if (pipe2(ready, O_CLOEXEC) < 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child > 0) {
    /* The short-lived parent: relay the daemon's verdict, then exit. */
    close(ready[1]);
    char msg[128] = { 0 };
    ssize_t r, got = 0;
    /* Stop at the verdict's newline: never depend on every copy of the pipe closing. */
    while (got < (ssize_t)sizeof msg - 1 && !memchr(msg, '\n', (size_t)got) && (r = read(ready[0], msg + got, sizeof msg - 1 - got)) > 0) got += r;
    if (got <= 0) strcpy(msg, "err\n");
    fputs(msg, stdout);
    return strncmp(msg, "ok ", 3) == 0 ? 0 : 1;
  }
  close(ready[0]);
  setsid();
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  int devnull = open("/dev/null", O_RDWR);
  dup2(devnull, 0);
  dup2(devnull, 1);
  close(devnull);
  /* Our own diagnostics go to a file: the agent waits for EOF on the parent's pipes. */
  char shim_log[4096];
  snprintf(shim_log, sizeof shim_log, "%s/shim.log", opt.state);
  int errfd = open(shim_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (errfd >= 0) { dup2(errfd, 2); close(errfd); }
  /* Our pid, so the agent can end a shim whose container is being removed. */
  char shim_pid[4096], pidtext[32];
  snprintf(shim_pid, sizeof shim_pid, "%s/shim.pid", opt.state);
  int pfd = open(shim_pid, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (pfd >= 0) { write_all(pfd, pidtext, (size_t)snprintf(pidtext, sizeof pidtext, "%d\n", (int)getpid())); close(pfd); }
  chdir("/");

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) die("signalfd");

  if (opt.log_path) {
    log_fd = open(opt.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (log_fd < 0) die(opt.log_path);
  }
  int listen_fd = unix_listen(opt.stdio_path);
  set_nonblock(listen_fd);
  char ctl_path[4096];
  snprintf(ctl_path, sizeof ctl_path, "%s/ctl", opt.state);
  unlink(ctl_path);
  if (mkfifo(ctl_path, 0600) < 0) die("mkfifo");
  /* O_RDWR keeps a writer open ourselves, so the FIFO never reports EOF between commands. */
  int ctl_fd = open(ctl_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);

  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
  if (!opt.tty) {
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) die("pipe");
    if (opt.stdin_open && pipe2(in, O_CLOEXEC) < 0) die("pipe");
  }
  int master = -1, status = 0;
  pid_t pid = -1;
  if (opt.spec) {
    /* An exec that joins the container itself (exec-direct.c), without runc. */
    if (exec_direct(in[0], out[1], err[1], &master, &pid) < 0) status = 1 << 8;
  } else {
    status = run_runc(sfd, in[0], out[1], err[1], &master);
    char pidfile[4096];
    snprintf(pidfile, sizeof pidfile, "%s/pid", opt.state);
    pid = read_pid_file(pidfile);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || pid <= 0 || (opt.tty && master < 0)) {
    write_all(ready[1], "err\n", 4);
    unlink(opt.stdio_path);
    unlink(ctl_path);
    return 1;
  }

  int outs[3] = { -1, -1, -1 }; /* readable output fds by stream number */
  if (opt.tty) {
    set_nonblock(master);
    outs[1] = master;
    if (opt.stdin_open) stdin_fd = master;
  } else {
    outs[1] = out[0]; outs[2] = err[0];
    set_nonblock(out[0]); set_nonblock(err[0]);
    if (in[1] >= 0) { stdin_fd = in[1]; set_nonblock(stdin_fd); }
  }
  char okmsg[64];
  int okn = snprintf(okmsg, sizeof okmsg, "ok %d\n", (int)pid);
  write_all(ready[1], okmsg, (size_t)okn);
  close(ready[1]);

  int exited = find_reaped(pid, &status);
  int drain_ms = exited ? 2000 : -1;
  int recorded = 0; /* exit status written and the agent told */
  for (;;) {
    if (exited && outs[1] < 0 && outs[2] < 0 && !recorded) {
      /* The status is known as soon as the output is drained, even while a --hold shim
       * still waits for its first client. */
      log_flush();
      write_exit_file(status);
      notify_agent();
      recorded = 1;
      drain_ms = HOLD_WAIT_MS;
    }
    /* Clients still owed output are served here, where a slow one delays the end without
     * losing bytes (each bit of progress restarts drain_ms); the blocking flush after the
     * loop gave up on a client that took no bytes for 5 s (a TCG guest's agent link). */
    if (recorded && (!opt.hold || had_client) && !clients_pending()) break;
    struct pollfd p[8 + MAX_CLIENTS];
    int n = 0;
    p[n++] = (struct pollfd){ sfd, POLLIN, 0 };
    p[n++] = (struct pollfd){ listen_fd, POLLIN, 0 };
    p[n++] = (struct pollfd){ ctl_fd, POLLIN, 0 };
    int full = clients_full();
    p[n++] = (struct pollfd){ full ? -1 : outs[1], POLLIN, 0 };
    p[n++] = (struct pollfd){ full ? -1 : outs[2], POLLIN, 0 };
    p[n++] = (struct pollfd){ stdin_buf.len ? stdin_fd : -1, POLLOUT, 0 };
    int base = n, polled = nclients; /* clients accepted below were not polled this round */
    for (int i = 0; i < nclients; i++) {
      short ev = (clients[i].reading && !stdin_buf.len ? POLLIN : 0) | (clients[i].out.len ? POLLOUT : 0);
      p[n++] = (struct pollfd){ clients[i].fd, ev, 0 };
    }
    /* After the process exits, output still in flight is drained; a leftover child
     * holding the pipe open must not keep the shim alive forever, nor a client that
     * reads nothing for drain_ms (each bit of progress a slow one makes restarts it). */
    int r = poll(p, n, exited ? drain_ms : -1);
    if (r < 0) { if (errno == EINTR) continue; die("poll"); }
    if (r == 0) {
      if (recorded) break; /* nobody came for the held output */
      /* Output still open after the drain grace: a leftover process holds it. Give up on it. */
      for (int s = 1; s <= 2; s++) if (outs[s] >= 0) { if (outs[s] == stdin_fd) stdin_fd = -1; close(outs[s]); outs[s] = -1; }
      continue;
    }
    if (p[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {}
      reap_all();
      if (!exited && find_reaped(pid, &status)) { exited = 1; drain_ms = 2000; }
    }
    if (p[1].revents & POLLIN) {
      int fd;
      while ((fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
        if (nclients == MAX_CLIENTS) { close(fd); continue; }
        clients[nclients++] = (struct client){ fd, 1, 0, { 0 } };
        if (opt.hold && !had_client) {
          had_client = 1;
          buf_append(&clients[nclients - 1].out, replay.data, replay.len);
          free(replay.data);
          replay = (struct buf){ 0 };
        }
      }
    }
    if (p[2].revents & POLLIN) {
      char cmd[256];
      ssize_t k = read(ctl_fd, cmd, sizeof cmd - 1);
      if (k > 0) {
        cmd[k] = 0;
        unsigned h, w;
        for (char *s = cmd; s && *s; s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL) {
          if (sscanf(s, "resize %u %u", &h, &w) == 2 && master >= 0) {
            struct winsize ws = { .ws_row = (unsigned short)h, .ws_col = (unsigned short)w };
            ioctl(master, TIOCSWINSZ, &ws);
          }
        }
      }
    }
    for (int s = 1; s <= 2; s++) {
      if (full || !(p[2 + s].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char data[CHUNK];
      ssize_t k = read(outs[s], data, sizeof data);
      if (k > 0) { log_output(s, data, (size_t)k); broadcast(s, data, (size_t)k); }
      else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
        /* EOF (or EIO from a pty whose last slave closed) */
        if (outs[s] == stdin_fd) stdin_fd = -1;
        close(outs[s]);
        outs[s] = -1;
      }
    }
    if (p[5].revents & (POLLOUT | POLLERR | POLLHUP) && stdin_fd >= 0) {
      ssize_t w = write(stdin_fd, stdin_buf.data, stdin_buf.len);
      if (w > 0) buf_consume(&stdin_buf, (size_t)w);
      else if (w < 0 && errno != EAGAIN && errno != EINTR) { stdin_buf.len = 0; }
      if (!stdin_buf.len && stdin_close_pending) { stdin_close_pending = 0; close_stdin(); }
    }
    if (stdin_fd < 0) stdin_buf.len = 0;
    for (int i = polled - 1; i >= 0; i--) {
      short rev = p[base + i].revents;
      if (rev & (POLLIN | POLLHUP)) { if (clients[i].reading) client_read(i, rev); }
      if ((rev & POLLOUT) && clients[i].out.len) {
        ssize_t w = write(clients[i].fd, clients[i].out.data, clients[i].out.len);
        if (w > 0) buf_consume(&clients[i].out, (size_t)w);
        else if (w < 0 && errno != EAGAIN && errno != EINTR) { drop_client(i); continue; }
      }
      if ((rev & (POLLERR | POLLNVAL)) || ((rev & POLLHUP) && !clients[i].out.len && !clients[i].reading)) drop_client(i);
    }
  }

  if (!recorded) {
    log_flush();
    write_exit_file(status);
  }
  close(listen_fd);
  unlink(opt.stdio_path);
  /* Flush what attached clients have not read yet (bounded), then close them. */
  struct timeval tv = { 5, 0 };
  for (int i = 0; i < nclients; i++) {
    int fd = clients[i].fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    write_all(fd, clients[i].out.data, clients[i].out.len);
    /* Half-close, then read (and drop) what the client still sends until it closes:
     * closing with unread input resets the connection, and the client may then lose
     * output it has not read yet (a terminal's ^D often arrives as the process exits). */
    shutdown(fd, SHUT_WR);
    struct timeval rtv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof rtv);
    char sink[4096];
    while (read(fd, sink, sizeof sink) > 0) {}
    close(fd);
  }
  close(ctl_fd);
  unlink(ctl_path);
  if (!recorded) notify_agent();
  return 0;
}

