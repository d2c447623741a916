/*
 * arcbox-rootfs-cp: the filesystem side of docker cp (GET/HEAD/PUT /containers/{id}/archive).
 *
 *   arcbox-rootfs-cp ROOT... stat PATH          answer: one JSON line (the path's lstat)
 *   arcbox-rootfs-cp ROOT... get PATH           answer line, then a tar of PATH
 *   arcbox-rootfs-cp ROOT... export /           answer line, then a tar of the root
 *                                               filesystem alone (docker export)
 *   arcbox-rootfs-cp layer UPPERDIR             answer line, then the overlay upper dir as
 *                                               a layer tar (docker commit in VM mode; no
 *                                               chroot: the dir is the machine's own)
 *   arcbox-rootfs-cp ROOT... put PATH [--no-overwrite-dir-non-dir] [--copy-uidgid]
 *                                               unpacks a tar from stdin into dir PATH
 *   ROOT: --pid PID --cgroup CGROUP             a running container: /proc/PID/root, once
 *                                               PID is checked to still be in CGROUP
 *      or --lower DIRS [--upper DIR --work DIR] --mountpoint DIR [--bind SRC DST ro|rw]...
 *                                               a stopped one: its overlay (read-only
 *                                               without --upper) plus its volumes, mounted
 *                                               in a mount namespace of our own, so no
 *                                               mount outlives this process
 *
 * Every path is touched only after chroot into the container's root and chdir("/"): the
 * kernel then resolves each symlink and `..` inside that root, so no race with the
 * container (swapping a directory for a link to `/`) can reach a host file. Errors are
 * the answer line {"error":kind,"message":...} and exit status 1.
 */
#include "rootfs-cp.h"
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>

#define MAX_BINDS 128

struct bind { const char *src, *dst; int ro; int fd; };

static void enter_running(const char *pid, const char *cgroup) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%s", pid);
  int proc = open(p, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (proc < 0) fail("conflict", "the container is no longer running");
  int root = openat(proc, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
  /* The pid could have been reused between apid's look-up and our open: the process
   * behind `proc` must still be in the container's cgroup (read after opening its root,
   * so both refer to that one process; a dead one fails the read). */
  char buf[16384];
  int cg = openat(proc, "cgroup", O_RDONLY | O_CLOEXEC);
  ssize_t n = cg >= 0 ? read(cg, buf, sizeof buf - 1) : -1;
  if (root < 0 || n <= 0) fail("conflict", "the container is no longer running");
  buf[n] = 0;
  int found = 0;
  size_t cl = strlen(cgroup);
  for (char *s = buf; (s = strstr(s, cgroup)) != NULL; s += cl)
    if (s > buf && s[-1] == ':' && (s[cl] == '\n' || s[cl] == '/' || s[cl] == 0)) found = 1;
  if (!found) fail("conflict", "the container is no longer running");
  if (fchdir(root) < 0 || chroot(".") < 0 || chdir("/") < 0) fail("internal", "entering the container root: %s", strerror(errno));
}

static void enter_stopped(const char *lower, const char *upper, const char *work, const char *mnt, struct bind *b, int nb) {
  if (unshare(CLONE_NEWNS) < 0) fail("internal", "unshare: %s", strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) fail("internal", "making mounts private: %s", strerror(errno));
  char opts[8192];
  if (upper) snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
  else snprintf(opts, sizeof opts, "lowerdir=%s", lower);
  if (mount("overlay", mnt, "overlay", upper ? 0 : MS_RDONLY, opts) < 0) fail("internal", "mounting the container root: %s", strerror(errno));
  /* Volume sources are host paths: take them before the chroot, attach them after it,
   * so their mount points resolve inside the root like the container's own. */
  for (int i = 0; i < nb; i++) {
    b[i].fd = open_tree(AT_FDCWD, b[i].src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (b[i].fd < 0) continue; /* a vanished source: the container would not see it either */
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    // SAFETY: unchecked on purpose; a failure leaves the bind writable only where upper is absent (then the overlay is read-only anyway).
    if (b[i].ro || !upper) mount_setattr(b[i].fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
  }
  if (chdir(mnt) < 0 || chroot(".") < 0 || chdir("/") < 0) fail("internal", "entering the container root: %s", strerror(errno));
  for (int i = 0; i < nb; i++)
    if (b[i].fd >= 0 && move_mount(b[i].fd, "", AT_FDCWD, b[i].dst, MOVE_MOUNT_F_EMPTY_PATH) < 0 && errno != ENOENT && errno != ENOTDIR)
      fail("internal", "mounting %s: %s", b[i].dst, strerror(errno));
}

/* Go's filepath.Base. */
static const char *go_base(const char *path, char *buf) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  if (n == 1 && path[0] == '/') return "/";
  const char *s = path + n;
  while (s > path && s[-1] != '/') s--;
  size_t k = (size_t)(path + n - s);
  memcpy(buf, s, k);
  buf[k] = 0;
  return k ? buf : ".";
}

/* Opens PATH's parent (symlinks followed, inside the root) and names PATH in it: "."
 * for the directory itself when PATH ends in "/" or "/." (which follows a final link). */
static int open_parent(const char *path, const char **name) {
  char dir[PATH_MAX];
  const char *slash = strrchr(path, '/');
  if (!slash) fail("invalid_argument", "path must be absolute: %s", path);
  size_t n = (size_t)(slash - path);
  if (n >= sizeof dir - 2) fail("invalid_argument", "path too long");
  memcpy(dir, path, n);
  strcpy(dir + n, "/");
  *name = slash[1] ? slash + 1 : ".";
  int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR)) fail("not_found", "no such file or directory");
  if (fd < 0) fail(errno == ELOOP ? "invalid_argument" : "internal", "%s: %s", path, strerror(errno));
  return fd;
}

/* The stat answer: Docker reports a link's target fully resolved inside the root. */
static void print_stat(int dirfd, const char *name, const char *path, struct stat *st) {
  if (fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT || errno == ENOTDIR) fail("not_found", "no such file or directory");
    fail("internal", "%s: %s", path, strerror(errno));
  }
  char target[PATH_MAX] = "";
  if (S_ISLNK(st->st_mode) && !realpath(path, target)) {
    /* Dangling: its own target, made absolute against the resolved parent. */
    char link[PATH_MAX], parent[PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s/", (int)(strrchr(path, '/') - path), path);
    if (link[0] == '/' || !realpath(dir, parent)) clean_path(link, target);
    else {
      char joined[PATH_MAX * 2];
      snprintf(joined, sizeof joined, "%s/%s", parent, link);
      clean_path(joined, target);
    }
  }
  char line[PATH_MAX * 2 + 256];
  snprintf(line, sizeof line, "{\"mode\":%u,\"size\":%lld,\"mtime\":%lld,\"mtimeNsec\":%ld,\"linkTarget\":\"", st->st_mode, (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
  json_escape(line, sizeof line - 4, target);
  strcat(line, "\"}\n");
  out_write(line, strlen(line));
}

static void usage(void) {
  fprintf(stderr, "usage: arcbox-rootfs-cp (--pid PID --cgroup CG | --lower DIRS [--upper DIR --work DIR] --mountpoint DIR [--bind SRC DST ro|rw]...) (stat|get|export|put) PATH [--no-overwrite-dir-non-dir] [--copy-uidgid]\n");
  exit(2);
}

int main(int argc, char **argv) {
  /* If apid dies, so does the copy: nothing is left half-running. */
  // SAFETY: unchecked; cannot fail for a valid signal number.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  umask(022);
  /* Blocking stdio, whatever the spawner handed us: writes and sendfile then wait for the reader. */
  for (int fd = 0; fd < 2; fd++) {
    int fl = fcntl(fd, F_GETFL);
    // SAFETY: unchecked; a pipe's flags can always be set, and a failure would only mean EAGAIN, reported as a write error.
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  if (argc == 3 && !strcmp(argv[1], "layer")) {
    tar_layer(argv[2]);
    out_flush();
    return 0;
  }
  const char *pid = NULL, *cgroup = NULL, *lower = NULL, *upper = NULL, *work = NULL, *mnt = NULL;
  struct bind binds[MAX_BINDS];
  int nb = 0, i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) usage();
    if (!strcmp(a, "--pid")) pid = argv[++i];
    else if (!strcmp(a, "--cgroup")) cgroup = argv[++i];
    else if (!strcmp(a, "--lower")) lower = argv[++i];
    else if (!strcmp(a, "--upper")) upper = argv[++i];
    else if (!strcmp(a, "--work")) work = argv[++i];
    else if (!strcmp(a, "--mountpoint")) mnt = argv[++i];
    else if (!strcmp(a, "--bind") && i + 3 < argc && nb < MAX_BINDS) {
      binds[nb] = (struct bind){argv[i + 1], argv[i + 2], !strcmp(argv[i + 3], "ro"), -1};
      nb++, i += 3;
    } else usage();
  }
  if (i + 2 > argc) usage();
  const char *op = argv[i], *path = argv[i + 1];
  struct extract_opts eo = {0, 0};
  for (int j = i + 2; j < argc; j++) {
    if (!strcmp(argv[j], "--no-overwrite-dir-non-dir")) eo.no_overwrite_dir_non_dir = 1;
    else if (!strcmp(argv[j], "--copy-uidgid")) eo.copy_uidgid = 1;
    else usage();
  }
  if (pid && cgroup) enter_running(pid, cgroup);
  else if (lower && mnt && (!upper) == (!work)) enter_stopped(lower, upper, work, mnt, binds, nb);
  else usage();

  if (!strcmp(op, "stat") || !strcmp(op, "get")) {
    const char *name;
    struct stat st;
    int dirfd = open_parent(path, &name);
    print_stat(dirfd, name, path, &st);
    if (!strcmp(op, "get")) {
      char b[NAME_MAX + 1];
      const char *rebase = go_base(path, b);
      /* Docker names the root's entries "/", "/etc/", ... (the CLI prefixes them). */
      tar_create(dirfd, name, strcmp(rebase, "/") ? rebase : "", 0);
    }
    out_flush();
    return 0;
  }
  if (!strcmp(op, "export")) {
    out_write("{\"ok\":true}\n", 12);
    tar_create(AT_FDCWD, "/", ".", 1);
    out_flush();
    return 0;
  }
  if (!strcmp(op, "put")) {
    /* The extraction point follows a final link (Docker: "so that you can extract an
     * archive to a symlink that points to a directory"). */
    struct stat st;
    char dest[PATH_MAX];
    if (stat(path, &st) < 0) {
      if (errno == ENOENT || errno == ENOTDIR) fail("not_found", "no such file or directory");
      fail(errno == ELOOP ? "invalid_argument" : "internal", "%s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) fail("invalid_argument", "extraction point is not a directory");
    /* Unpack relative to the directory opened here, so later renames by the container
     * cannot move the extraction elsewhere midway; `dest` only names it in messages. */
    int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fchdir(fd) < 0) fail(errno == ENOENT || errno == ENOTDIR ? "not_found" : "internal", "%s: %s", path, strerror(errno));
    if (!getcwd(dest, sizeof dest)) clean_path(path, dest);
    tar_extract(dest, &eo);
    out_write("{\"ok\":true}\n", 12);
    out_flush();
    return 0;
  }
  usage();
}
