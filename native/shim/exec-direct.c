/*
 * arcbox-shim: starts an exec by joining a running container directly, without `runc
 * exec` (which costs ~55 ms of Go start-up, state loading and a re-exec per exec).
 * The spec file (written by guest/core/exec-runtime.ts) is a list of NUL-terminated
 * "key", "value" pairs; the steps mirror runc 1.1's setns_init so the process ends up
 * exactly as `runc exec` left it: the init's cgroups and namespaces, its root, a new
 * session, the container's seccomp filter, the bounding/effective/permitted capability
 * sets, the user and groups, the cwd, the env, then execve. Errors go to runc.log in
 * runc's JSON format with runc's wording (the agent maps "exec: ..." to 127/126).
 */
#include "shim.h"
#include "../common/exec-path.h"
#include <dlfcn.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define MAX_LIST 1024

struct exec_spec {
  pid_t init_pid;
  uid_t uid; gid_t gid;
  gid_t groups[MAX_LIST]; int ngroups;
  const char *cwd;
  uint64_t caps;
  int nnp, rows, cols;
  char *env[MAX_LIST + 1]; int nenv;
  char *args[MAX_LIST + 1]; int nargs;
  const char *arches[16]; int narches;
  const char *rules[MAX_LIST]; int nrules; /* "name errno [index mask value]" */
  struct { int resource; struct rlimit lim; } rlimits[16]; int nrlimits; /* the container's Ulimits */
};

/* "soft" or "hard" of an rlimit entry: a number, or "inf" (RLIM_INFINITY). */
static rlim_t rlim_value(const char *v) { return strcmp(v, "inf") ? (rlim_t)strtoull(v, NULL, 10) : RLIM_INFINITY; }

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int log_fd_runc = -1;

/* Appends {"level":"error","msg":...} to runc.log (the agent reads the last error). */
static void log_error(const char *fmt, ...) {
  char msg[2048], out[4200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  size_t k = 0;
  k += (size_t)snprintf(out, sizeof out, "{\"level\":\"error\",\"msg\":\"");
  for (const char *c = msg; *c && k < sizeof out - 8; c++) {
    if (*c == '"' || *c == '\\') { out[k++] = '\\'; out[k++] = *c; }
    else if ((unsigned char)*c < 0x20) k += (size_t)snprintf(out + k, sizeof out - k, "\\u%04x", *c);
    else out[k++] = *c;
  }
  k += (size_t)snprintf(out + k, sizeof out - k, "\"}\n");
  if (log_fd_runc >= 0) write_all(log_fd_runc, out, k);
}

static int parse_spec(const char *path, struct exec_spec *s) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { log_error("open exec spec %s: %s", path, strerror(errno)); return -1; }
  struct stat st;
  fstat(fd, &st);
  char *data = malloc((size_t)st.st_size + 1); /* kept for the process's lifetime: the spec points into it */
  ssize_t got = 0, r;
  while (got < st.st_size && (r = read(fd, data + got, (size_t)(st.st_size - got))) > 0) got += r;
  close(fd);
  data[got] = 0;
  memset(s, 0, sizeof *s);
  s->cwd = "/";
  for (char *p = data; p < data + got;) {
    char *key = p; p += strlen(p) + 1;
    if (p >= data + got) break;
    char *val = p; p += strlen(p) + 1;
    if (!strcmp(key, "pid")) s->init_pid = (pid_t)atol(val);
    else if (!strcmp(key, "uid")) s->uid = (uid_t)strtoul(val, NULL, 10);
    else if (!strcmp(key, "gid")) s->gid = (gid_t)strtoul(val, NULL, 10);
    else if (!strcmp(key, "group") && s->ngroups < MAX_LIST) s->groups[s->ngroups++] = (gid_t)strtoul(val, NULL, 10);
    else if (!strcmp(key, "cwd")) s->cwd = val;
    else if (!strcmp(key, "caps")) s->caps = strtoull(val, NULL, 16);
    else if (!strcmp(key, "nnp")) s->nnp = atoi(val);
    else if (!strcmp(key, "rows")) s->rows = atoi(val);
    else if (!strcmp(key, "cols")) s->cols = atoi(val);
    else if (!strcmp(key, "env") && s->nenv < MAX_LIST) s->env[s->nenv++] = val;
    else if (!strcmp(key, "arg") && s->nargs < MAX_LIST) s->args[s->nargs++] = val;
    else if (!strcmp(key, "arch") && s->narches < 16) s->arches[s->narches++] = val;
    else if (!strcmp(key, "deny") && s->nrules < MAX_LIST) s->rules[s->nrules++] = val;
    else if (!strcmp(key, "rlimit") && s->nrlimits < 16) {
      /* "resource soft hard" */
      char soft[32] = "", hard[32] = "";
      int res = -1;
      if (sscanf(val, "%d %31s %31s", &res, soft, hard) == 3) {
        s->rlimits[s->nrlimits].resource = res;
        s->rlimits[s->nrlimits].lim.rlim_cur = rlim_value(soft);
        s->rlimits[s->nrlimits].lim.rlim_max = rlim_value(hard);
        s->nrlimits++;
      }
    }
  }
  /* pid 0: a machine exec ("run" mode), in the shim's own namespaces and root. */
  if (s->init_pid < 0 || (s->init_pid == 0 && strcmp(opt.mode, "run") != 0) || s->nargs == 0) { log_error("exec spec %s is incomplete", path); return -1; }
  return 0;
}

/* --- seccomp through libseccomp (runc's own dependency), loaded at run time so the
 * shim builds without its headers. The rules are those of the container's config.json. */
struct scmp_arg_cmp { unsigned int arg; int op; uint64_t datum_a, datum_b; };
#define SCMP_ACT_ALLOW 0x7fff0000U
#define SCMP_ACT_ERRNO(x) (0x00050000U | ((x) & 0x0000ffffU))
#define SCMP_CMP_MASKED_EQ 7
#define SCMP_FLTATR_CTL_NNP 3

static int (*seccomp_load_fn)(void *);
static void *seccomp_ctx;

/* Builds the filter (in user space) while libseccomp is still reachable: before chroot. */
static int prepare_seccomp(const struct exec_spec *s) {
  if (s->nrules == 0) return 0; /* privileged: no filter, as the container */
  void *lib = dlopen("libseccomp.so.2", RTLD_NOW);
  if (!lib) { log_error("cannot load libseccomp: %s", dlerror()); return -1; }
  void *(*init)(uint32_t) = (void *(*)(uint32_t))dlsym(lib, "seccomp_init");
  int (*attr_set)(void *, int, uint32_t) = (int (*)(void *, int, uint32_t))dlsym(lib, "seccomp_attr_set");
  uint32_t (*arch_resolve)(const char *) = (uint32_t (*)(const char *))dlsym(lib, "seccomp_arch_resolve_name");
  int (*arch_add)(void *, uint32_t) = (int (*)(void *, uint32_t))dlsym(lib, "seccomp_arch_add");
  int (*resolve)(const char *) = (int (*)(const char *))dlsym(lib, "seccomp_syscall_resolve_name");
  int (*rule_add)(void *, uint32_t, int, unsigned int, const struct scmp_arg_cmp *) =
    (int (*)(void *, uint32_t, int, unsigned int, const struct scmp_arg_cmp *))dlsym(lib, "seccomp_rule_add_array");
  int (*load)(void *) = (int (*)(void *))dlsym(lib, "seccomp_load");
  if (!init || !attr_set || !arch_resolve || !arch_add || !resolve || !rule_add || !load) { log_error("libseccomp lacks a symbol"); return -1; }
  void *ctx = init(SCMP_ACT_ALLOW);
  if (!ctx) { log_error("seccomp_init failed"); return -1; }
  attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0); /* as runc: we still hold CAP_SYS_ADMIN here */
  for (int i = 0; i < s->narches; i++) {
    uint32_t a = arch_resolve(s->arches[i]);
    if (a) arch_add(ctx, a); /* the native one already exists (EEXIST): fine */
  }
  for (int i = 0; i < s->nrules; i++) {
    char name[128];
    unsigned err = 1, index = 0;
    unsigned long long mask = 0, value = 0;
    int n = sscanf(s->rules[i], "%127s %u %u %llu %llu", name, &err, &index, &mask, &value);
    int nr = resolve(name);
    if (n < 2 || nr == -1 /* __NR_SCMP_ERROR: unknown on every arch, runc skips it too */) continue;
    struct scmp_arg_cmp cmp = { index, SCMP_CMP_MASKED_EQ, mask, value };
    int rc = rule_add(ctx, SCMP_ACT_ERRNO(err), nr, n == 5 ? 1 : 0, &cmp);
    if (rc < 0) { log_error("seccomp rule %s: %s", name, strerror(-rc)); return -1; }
  }
  seccomp_load_fn = load;
  seccomp_ctx = ctx;
  return 0;
}

static int load_seccomp(void) {
  if (!seccomp_ctx) return 0;
  int rc = seccomp_load_fn(seccomp_ctx);
  if (rc < 0) { log_error("seccomp_load: %s", strerror(-rc)); return -1; }
  return 0;
}

/* --- the steps inside the container --- */

/* Moves the calling process into each hierarchy's cgroup of the init ("0" = the writer). */
static int join_cgroups(pid_t init_pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/cgroup", (int)init_pid);
  FILE *f = fopen(path, "re");
  if (!f) { log_error("read %s: %s", path, strerror(errno)); return -1; }
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *ctrls = strchr(line, ':');
    char *cg = ctrls ? strchr(ctrls + 1, ':') : NULL;
    if (!cg) continue;
    *cg++ = 0; ctrls++;
    char dir[2048];
    if (!*ctrls) snprintf(dir, sizeof dir, "/sys/fs/cgroup/unified%s", cg);
    else snprintf(dir, sizeof dir, "/sys/fs/cgroup/%s%s", strncmp(ctrls, "name=", 5) ? ctrls : ctrls + 5, cg);
    if (!*ctrls && access(dir, F_OK) != 0) snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", cg); /* pure v2 */
    strncat(dir, "/cgroup.procs", sizeof dir - strlen(dir) - 1);
    int fd = open(dir, O_WRONLY | O_CLOEXEC);
    if (fd < 0) { if (errno == ENOENT) continue; log_error("open %s: %s", dir, strerror(errno)); fclose(f); return -1; }
    if (write(fd, "0", 1) < 0) { log_error("join cgroup %s: %s", dir, strerror(errno)); close(fd); fclose(f); return -1; }
    close(fd);
  }
  fclose(f);
  return 0;
}

static const char *NS_ORDER[] = { "cgroup", "ipc", "uts", "net", "mnt" }; /* pid is joined by the shim */

/* Opens the init's namespaces that differ from ours (-1 where they are the same). */
static int open_namespaces(pid_t init_pid, const char *name, int *fd) {
  char theirs[64], ours[64];
  struct stat a, b;
  snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)init_pid, name);
  snprintf(ours, sizeof ours, "/proc/self/ns/%s", name);
  *fd = -1;
  if (stat(theirs, &a) != 0) { if (errno == ENOENT) return 0; log_error("stat %s: %s", theirs, strerror(errno)); return -1; }
  if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) return 0;
  *fd = open(theirs, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) { log_error("open %s: %s", theirs, strerror(errno)); return -1; }
  return 0;
}

static int set_capabilities(uint64_t caps) {
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  int last = 40;
  if (f) { if (fscanf(f, "%d", &last) != 1) last = 40; fclose(f); }
  for (int c = 0; c <= last; c++)
    if (!(caps >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) { log_error("drop bounding cap %d: %s", c, strerror(errno)); return -1; }
  return 0;
}

static int apply_caps(uint64_t caps) {
  struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
  struct __user_cap_data_struct d[2] = {
    { (uint32_t)caps, (uint32_t)caps, 0 },
    { (uint32_t)(caps >> 32), (uint32_t)(caps >> 32), 0 },
  };
  if (syscall(SYS_capset, &h, d) < 0) { log_error("capset: %s", strerror(errno)); return -1; }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  return 0;
}

/* exec-path.c's LookPath, its reason in runc.log. */
static int find_executable(const struct exec_spec *s, char *out, size_t n) {
  char why[1024];
  if (look_path(s->args[0], env_lookup(s->env, s->nenv, "PATH"), out, n, why, sizeof why) == 0) return 0;
  log_error("%s", why);
  return -1;
}

static int send_fd(int sock, int fd) {
  char byte = 0, cbuf[CMSG_SPACE(sizeof(int))];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = { &byte, 1 };
  struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &m, 0) < 0 ? -1 : 0;
}

/* Opens a pty in the container's devpts (we are in its mount namespace now), hands the
 * master to the shim and makes the slave our controlling terminal and stdio. */
static int setup_tty(const struct exec_spec *s, int console_sock) {
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) { log_error("open /dev/ptmx: %s", strerror(errno)); return -1; }
  if (unlockpt(master) < 0) { log_error("unlockpt: %s", strerror(errno)); return -1; }
  int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
  if (slave < 0) {
    char name[128];
    if (ptsname_r(master, name, sizeof name) != 0 || (slave = open(name, O_RDWR | O_NOCTTY)) < 0) { log_error("open pty slave: %s", strerror(errno)); return -1; }
  }
  if (s->rows > 0 && s->cols > 0) {
    struct winsize ws = { .ws_row = (unsigned short)s->rows, .ws_col = (unsigned short)s->cols };
    ioctl(master, TIOCSWINSZ, &ws);
  }
  if (send_fd(console_sock, master) < 0) { log_error("send pty master: %s", strerror(errno)); return -1; }
  close(master);
  if (ioctl(slave, TIOCSCTTY, 0) < 0) { log_error("set controlling terminal: %s", strerror(errno)); return -1; }
  dup2(slave, 0); dup2(slave, 1); dup2(slave, 2);
  if (slave > 2) close(slave);
  return 0;
}

/* In the forked child: everything after fork up to execve. Returns only on failure. */
static void enter_container(const struct exec_spec *s, int ns_fds[], int root_fd, int in_r, int out_w, int err_w, int console_sock) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  if (setsid() < 0) { log_error("setsid: %s", strerror(errno)); return; }
  /* As runc exec: the container's rlimits (lowering needs no capability). */
  for (int i = 0; i < s->nrlimits; i++)
    if (setrlimit(s->rlimits[i].resource, &s->rlimits[i].lim) < 0) { log_error("error setting rlimit type %d: %s", s->rlimits[i].resource, strerror(errno)); return; }
  if (prepare_seccomp(s) < 0) return;
  if (s->init_pid > 0) {
    if (join_cgroups(s->init_pid) < 0) return;
    for (size_t i = 0; i < sizeof NS_ORDER / sizeof NS_ORDER[0]; i++)
      if (ns_fds[i] >= 0 && setns(ns_fds[i], 0) < 0) { log_error("setns %s: %s", NS_ORDER[i], strerror(errno)); return; }
    /* The init's root, whatever the mount namespace's own root is. */
    if (fchdir(root_fd) < 0 || chroot(".") < 0) { log_error("enter the container's root: %s", strerror(errno)); return; }
  }
  if (console_sock >= 0) { if (setup_tty(s, console_sock) < 0) return; }
  else {
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    dup2(in_r >= 0 ? in_r : devnull, 0);
    dup2(out_w >= 0 ? out_w : devnull, 1);
    dup2(err_w >= 0 ? err_w : devnull, 2);
  }
  if (s->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) { log_error("no_new_privs: %s", strerror(errno)); return; }
  if (load_seccomp() < 0) return;
  if (set_capabilities(s->caps) < 0) return;
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) { log_error("keepcaps: %s", strerror(errno)); return; }
  /* As runc: exactly the additional gids (none: an empty list, not the primary gid). */
  if (setgroups((size_t)s->ngroups, s->groups) < 0) { log_error("setgroups: %s", strerror(errno)); return; }
  if (setresgid(s->gid, s->gid, s->gid) < 0) { log_error("setgid %u: %s", s->gid, strerror(errno)); return; }
  if (setresuid(s->uid, s->uid, s->uid) < 0) { log_error("setuid %u: %s", s->uid, strerror(errno)); return; }
  if (chdir(s->cwd) < 0) { log_error("chdir to cwd (\"%s\") set in config.json failed: %s", s->cwd, strerror(errno)); return; }
  if (apply_caps(s->caps) < 0) return;
  char exe[4096];
  if (find_executable(s, exe, sizeof exe) < 0) return;
  execve(exe, s->args, s->env);
  log_error("exec: \"%s\": %s", s->args[0], strerror(errno));
}

/*
 * Starts the exec described by opt.spec: joins the init's pid namespace (only our
 * future children enter it), forks, and lets the child enter the rest. Resolves once
 * the child has called execve (or failed). Returns 0 and the pid, or -1 (runc.log says why).
 */
int exec_direct(int in_r, int out_w, int err_w, int *master, pid_t *pid_out) {
  char runclog[4096];
  snprintf(runclog, sizeof runclog, "%s/runc.log", opt.state);
  log_fd_runc = open(runclog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  static struct exec_spec s;
  if (parse_spec(opt.spec, &s) < 0) return -1;
  int ns_fds[sizeof NS_ORDER / sizeof NS_ORDER[0]], pid_ns = -1, root_fd = -1;
  for (size_t i = 0; i < sizeof NS_ORDER / sizeof NS_ORDER[0]; i++) ns_fds[i] = -1;
  if (s.init_pid > 0) { /* a container exec: join its init; a machine exec stays here */
    for (size_t i = 0; i < sizeof NS_ORDER / sizeof NS_ORDER[0]; i++) if (open_namespaces(s.init_pid, NS_ORDER[i], &ns_fds[i]) < 0) return -1;
    if (open_namespaces(s.init_pid, "pid", &pid_ns) < 0) return -1;
    char root[64];
    snprintf(root, sizeof root, "/proc/%d/root", (int)s.init_pid);
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) { log_error("open %s: %s", root, strerror(errno)); return -1; }
  }
  if (pid_ns >= 0 && setns(pid_ns, CLONE_NEWPID) < 0) { log_error("setns pid: %s", strerror(errno)); return -1; }
  int status_pipe[2], console[2] = { -1, -1 };
  if (pipe2(status_pipe, O_CLOEXEC) < 0) die("pipe");
  if (opt.tty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, console) < 0) die("socketpair");
  pid_t child = fork();
  if (child < 0) { log_error("fork: %s", strerror(errno)); return -1; }
  if (child == 0) {
    close(status_pipe[0]);
    if (console[0] >= 0) close(console[0]);
    enter_container(&s, ns_fds, root_fd, in_r, out_w, err_w, console[1]);
    write(status_pipe[1], "e", 1); /* the reason is in runc.log */
    _exit(127);
  }
  close(status_pipe[1]);
  if (in_r >= 0) close(in_r);
  if (out_w >= 0) close(out_w);
  if (err_w >= 0) close(err_w);
  for (size_t i = 0; i < sizeof NS_ORDER / sizeof NS_ORDER[0]; i++) if (ns_fds[i] >= 0) close(ns_fds[i]);
  if (pid_ns >= 0) close(pid_ns);
  if (root_fd >= 0) close(root_fd);
  if (console[1] >= 0) {
    close(console[1]);
    *master = recv_fd(console[0]); /* -1 when the child failed before opening the pty */
    close(console[0]);
  }
  char verdict;
  ssize_t r;
  while ((r = read(status_pipe[0], &verdict, 1)) < 0 && errno == EINTR) {}
  close(status_pipe[0]);
  if (log_fd_runc >= 0) { close(log_fd_runc); log_fd_runc = -1; }
  if (r != 0) return -1; /* the child reported a failure (or vanished mid-way) */
  *pid_out = child;
  return 0;
}
