/*
 * Writes the archive docker cp sends: GNU tar headers (long names as ././@LongLink),
 * numeric owners, a file's capabilities as a PAX record (as Docker), hard links kept as links, directories walked in name order through
 * directory fds opened O_NOFOLLOW, so the walk never leaves the tree it started in.
 * Pseudo filesystems mounted in a running container (/proc, /sys, ...) are listed as
 * empty directories: Docker does not see them either, and /proc would never end; for
 * docker export, so is every other filesystem mounted in the root (volumes, /dev).
 */
#include "rootfs-cp.h"
#include <dirent.h>
#include <linux/magic.h>
#include <sys/sendfile.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

struct seen { dev_t dev; ino_t ino; char *name; };
/* Set for docker export: directories of other filesystems (volumes, /dev, ...) are archived empty. */
static dev_t one_fs_dev;
/* Set for a layer of an overlay upper dir (commit): whiteouts and opaque dirs become markers. */
static int layer_mode;
static struct seen *seen;
static size_t nseen, capseen;

static void num(char *f, size_t w, unsigned long long v) {
  if (v >> (3 * (w - 1))) { /* too big for octal: GNU base-256 */
    memset(f, 0, w);
    for (size_t i = w - 1; i > 0; i--, v >>= 8) f[i] = (char)(v & 0xff);
    f[0] = (char)0x80;
  } else {
    snprintf(f, w, "%0*llo", (int)(w - 1), v);
  }
}

static void header_block(const char *name, const char *link, char type, unsigned mode, const struct stat *st, unsigned long long size) {
  char h[BLOCK];
  memset(h, 0, sizeof h);
  strncpy(h, name, 100);
  num(h + 100, 8, mode & 07777);
  num(h + 108, 8, st ? st->st_uid : 0);
  num(h + 116, 8, st ? st->st_gid : 0);
  num(h + 124, 12, size);
  num(h + 136, 12, st && st->st_mtim.tv_sec > 0 ? (unsigned long long)st->st_mtim.tv_sec : 0);
  h[156] = type;
  if (link) strncpy(h + 157, link, 100);
  memcpy(h + 257, "ustar  ", 8); /* GNU magic + version */
  if (st && (type == '3' || type == '4')) {
    num(h + 329, 8, major(st->st_rdev));
    num(h + 337, 8, minor(st->st_rdev));
  }
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < BLOCK; i++) sum += (unsigned char)h[i];
  snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  out_write(h, BLOCK);
}

static void pad(unsigned long long size) {
  static const char zero[BLOCK];
  if (size % BLOCK) out_write(zero, BLOCK - size % BLOCK);
}

/* A ././@LongLink record for a name or link target that does not fit 100 bytes. */
static void long_record(char type, const char *s) {
  size_t n = strlen(s) + 1;
  header_block("././@LongLink", NULL, type, 0644, NULL, n);
  out_write(s, n);
  pad(n);
}

static void header(const char *name, const char *link, char type, const struct stat *st, unsigned long long size) {
  if (strlen(name) > 100) long_record('L', name);
  if (link && strlen(link) > 100) long_record('K', link);
  header_block(name, link, type, st->st_mode, st, size);
}

/* A PAX record carrying a file's capabilities, the one xattr Docker archives. */
static void caps_record(int fd) {
  char val[512];
  ssize_t n = fgetxattr(fd, "security.capability", val, sizeof val);
  if (n <= 0) return;
  const char *key = " SCHILY.xattr.security.capability=";
  size_t base = strlen(key) + (size_t)n + 1, len = base + 1;
  while (len != base + (size_t)snprintf(NULL, 0, "%zu", len)) len = base + (size_t)snprintf(NULL, 0, "%zu", len);
  char rec[1024];
  int k = snprintf(rec, sizeof rec, "%zu%s", len, key);
  memcpy(rec + k, val, (size_t)n);
  rec[k + n] = '\n';
  header_block("././@PaxHeader", NULL, 'x', 0644, NULL, len);
  out_write(rec, len);
  pad(len);
}

/* File data: exactly `size` bytes (zero-filled if the file shrank meanwhile). */
static void copy_data(int fd, unsigned long long size) {
  out_flush();
  unsigned long long left = size;
  while (left) {
    ssize_t n = sendfile(1, fd, NULL, left > (1 << 30) ? (1 << 30) : left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    left -= (unsigned long long)n;
  }
  static const char zero[BLOCK];
  while (left) {
    size_t k = left > BLOCK ? BLOCK : left;
    out_write(zero, k);
    left -= k;
  }
  pad(size);
}

static int pseudo_fs(int fd) {
  struct statfs sf;
  if (fstatfs(fd, &sf) < 0) return 0;
  switch ((unsigned long)sf.f_type) {
  case PROC_SUPER_MAGIC: case SYSFS_MAGIC: case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC:
  case DEVPTS_SUPER_MAGIC: case SECURITYFS_MAGIC: case DEBUGFS_MAGIC: case TRACEFS_MAGIC:
  case BPF_FS_MAGIC: case PSTOREFS_MAGIC: case 0x19800202 /* mqueue */: case 0x62656570 /* configfs */:
  case 0x65735543 /* fusectl */: case 0x42494e4d /* binfmt_misc */:
    return 1;
  }
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void emit(int dirfd, const char *name, const char *tarname);

static void emit_dir(int fd, const char *tarname) {
  DIR *d = fdopendir(fd);
  if (!d) { close(fd); return; }
  char **names = NULL;
  size_t n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) names = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
    names[n++] = strdup(e->d_name);
  }
  qsort(names, n, sizeof *names, by_name);
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(tarname) + strlen(names[i]) + 2;
    char *child = malloc(len);
    /* A layer's entries are relative ("etc/x"), under no root entry. */
    if (layer_mode && !*tarname) snprintf(child, len, "%s", names[i]);
    else snprintf(child, len, "%s/%s", tarname, names[i]);
    emit(dirfd(d), names[i], child);
    free(child);
    free(names[i]);
  }
  free(names);
  closedir(d);
}

/* `tarname` with its last component prefixed: "a/b" -> "a/<prefix>b". */
static char *prefixed(const char *tarname, const char *prefix) {
  const char *slash = strrchr(tarname, '/');
  size_t dir = slash ? (size_t)(slash - tarname) + 1 : 0, len = strlen(tarname) + strlen(prefix) + 1;
  char *out = malloc(len);
  snprintf(out, len, "%.*s%s%s", (int)dir, tarname, prefix, tarname + dir);
  return out;
}

static void emit(int dirfd, const char *name, const char *tarname) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return; /* gone meanwhile */
  if (layer_mode && S_ISCHR(st.st_mode) && st.st_rdev == 0) {
    /* overlayfs's whiteout (a 0:0 character device): the layer's ".wh.NAME". */
    char *wh = prefixed(tarname, ".wh.");
    header(wh, NULL, '0', &st, 0);
    free(wh);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    size_t len = strlen(tarname) + 2;
    char *dname = malloc(len);
    snprintf(dname, len, "%s/", tarname);
    header(dname, NULL, '5', &st, 0);
    free(dname);
    char opq[2] = "";
    if (layer_mode && fgetxattr(fd, "trusted.overlay.opaque", opq, 1) == 1 && opq[0] == 'y') {
      /* An opaque directory hides the layers below: the layer's ".wh..wh..opq" marker. */
      size_t olen = strlen(tarname) + 16;
      char *marker = malloc(olen);
      snprintf(marker, olen, "%s/.wh..wh..opq", tarname);
      header(marker, NULL, '0', &st, 0);
      free(marker);
    }
    if (pseudo_fs(fd) || (one_fs_dev && st.st_dev != one_fs_dev)) close(fd);
    else emit_dir(fd, tarname);
  } else if (S_ISREG(st.st_mode)) {
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) { /* swapped meanwhile */
      if (fd >= 0) close(fd);
      return;
    }
    if (st.st_nlink > 1) {
      for (size_t i = 0; i < nseen; i++)
        if (seen[i].dev == st.st_dev && seen[i].ino == st.st_ino) {
          header(tarname, seen[i].name, '1', &st, 0);
          close(fd);
          return;
        }
      if (nseen == capseen) seen = realloc(seen, (capseen = capseen ? capseen * 2 : 16) * sizeof *seen);
      seen[nseen++] = (struct seen){st.st_dev, st.st_ino, strdup(tarname)};
    }
    caps_record(fd);
    header(tarname, NULL, '0', &st, (unsigned long long)st.st_size);
    copy_data(fd, (unsigned long long)st.st_size);
    close(fd);
  } else if (S_ISLNK(st.st_mode)) {
    char link[PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, link, sizeof link - 1);
    if (n < 0) return;
    link[n] = 0;
    header(tarname, link, '2', &st, 0);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) || S_ISFIFO(st.st_mode)) {
    header(tarname, NULL, S_ISCHR(st.st_mode) ? '3' : S_ISBLK(st.st_mode) ? '4' : '6', &st, 0);
  } /* sockets are not archived (Go's tar cannot either) */
}

void tar_layer(const char *upper) {
  layer_mode = 1;
  int fd = open(upper, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail(errno == ENOENT ? "not_found" : "internal", "%s: %s", upper, strerror(errno));
  out_write("{\"ok\":true}\n", 12);
  emit_dir(fd, "");
  static const char end[BLOCK * 2];
  out_write(end, sizeof end);
}

void tar_create(int dirfd, const char *name, const char *rebase, int one_fs) {
  struct stat st;
  if (one_fs && fstatat(dirfd, name, &st, 0) == 0) one_fs_dev = st.st_dev;
  emit(dirfd, name, rebase);
  static const char end[BLOCK * 2];
  out_write(end, sizeof end);
}
