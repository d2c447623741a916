/*
 * Unpacks the archive of a docker cp upload with Docker's rules (pkg/archive Unpack):
 * names are cleaned and joined to the destination, so intermediate symlinks are
 * followed (inside the root: we are chrooted); an existing entry is replaced unless it
 * and the new one are both directories; with --no-overwrite-dir-non-dir a directory
 * and a non-directory never replace each other; links may not point above the
 * destination; owners are root unless --copy-uidgid; xattrs (SCHILY.xattr.*) applied
 * after the owner; directory times are set last.
 * Reads ustar, GNU (long names, base-256 numbers) and PAX headers.
 */
#include "rootfs-cp.h"
#include <ftw.h>
#include <limits.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

struct hdr {
  char name[PATH_MAX], link[PATH_MAX];
  char type;
  unsigned mode, devmajor, devminor;
  long long uid, gid, size;
  struct timespec mtime, atime;
};

struct dir_time { char *path; struct timespec t[2]; };

/* SCHILY.xattr.* records of the pending PAX header (Docker applies them after lchown). */
#define MAX_XATTRS 32
struct xattr { char *name, *value; size_t len; };
static struct xattr xattrs[MAX_XATTRS];
static int nxattrs;

static void clear_xattrs(void) {
  for (int i = 0; i < nxattrs; i++) free(xattrs[i].name), free(xattrs[i].value);
  nxattrs = 0;
}
static struct dir_time *dirs;
static size_t ndirs, capdirs;
static char buf[1 << 16];

static int read_full(void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(0, (char *)p + got, n - got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) fail("internal", "reading the archive: %s", strerror(errno));
    if (k == 0) break;
    got += (size_t)k;
  }
  if (got && got < n) fail("invalid_argument", "unexpected EOF");
  return got == n;
}

static void skip(long long size) {
  long long left = (size + BLOCK - 1) / BLOCK * BLOCK;
  while (left > 0) {
    size_t k = left > (long long)sizeof buf ? sizeof buf : (size_t)left;
    if (!read_full(buf, k)) fail("invalid_argument", "unexpected EOF");
    left -= (long long)k;
  }
}

/* Reads an entry's data (a long name or PAX records) into a fresh NUL-terminated buffer. */
static char *read_data(long long size) {
  if (size < 0 || size > (1 << 20)) fail("invalid_argument", "archive/tar: header data too large");
  long long padded = (size + BLOCK - 1) / BLOCK * BLOCK;
  char *d = malloc((size_t)padded + 1);
  if (padded && !read_full(d, (size_t)padded)) fail("invalid_argument", "unexpected EOF");
  d[size] = 0;
  return d;
}

static long long number(const char *f, size_t w) {
  if ((unsigned char)f[0] & 0x80) {
    long long v = f[0] & 0x7f;
    for (size_t i = 1; i < w; i++) v = v * 256 + (unsigned char)f[i];
    return v;
  }
  long long v = 0;
  size_t i = 0;
  while (i < w && f[i] == ' ') i++;
  for (; i < w && f[i] >= '0' && f[i] <= '7'; i++) v = v * 8 + (f[i] - '0');
  return v;
}

static struct timespec pax_time(const char *v) {
  struct timespec t = {0, 0};
  char *end;
  t.tv_sec = strtoll(v, &end, 10);
  if (*end == '.') {
    long ns = 0;
    int digits = 0;
    for (end++; *end >= '0' && *end <= '9' && digits < 9; end++, digits++) ns = ns * 10 + (*end - '0');
    for (; digits < 9; digits++) ns *= 10;
    t.tv_nsec = t.tv_sec < 0 ? -ns : ns;
  }
  return t;
}

/* PAX records ("LEN key=value\n") override the header that follows. */
static void apply_pax(char *d, long long size, struct hdr *over, int *set) {
  char *p = d, *end = d + size;
  while (p < end) {
    char *sp;
    long len = strtol(p, &sp, 10);
    if (len <= 0 || *sp != ' ' || p + len > end) fail("invalid_argument", "archive/tar: invalid tar header");
    char *kv = sp + 1, *eq = memchr(kv, '=', (size_t)(p + len - kv));
    if (!eq) fail("invalid_argument", "archive/tar: invalid tar header");
    *eq = 0;
    p[len - 1] = 0; /* the trailing newline */
    const char *v = eq + 1;
    if (!strcmp(kv, "path")) snprintf(over->name, sizeof over->name, "%s", v), *set |= 1;
    else if (!strcmp(kv, "linkpath")) snprintf(over->link, sizeof over->link, "%s", v), *set |= 2;
    else if (!strcmp(kv, "size")) over->size = strtoll(v, NULL, 10), *set |= 4;
    else if (!strcmp(kv, "uid")) over->uid = strtoll(v, NULL, 10), *set |= 8;
    else if (!strcmp(kv, "gid")) over->gid = strtoll(v, NULL, 10), *set |= 16;
    else if (!strcmp(kv, "mtime")) over->mtime = pax_time(v), *set |= 32;
    else if (!strcmp(kv, "atime")) over->atime = pax_time(v), *set |= 64;
    else if (!strncmp(kv, "SCHILY.xattr.", 13) && nxattrs < MAX_XATTRS) {
      size_t vlen = (size_t)(p + len - 1 - v); /* binary: up to the record's newline */
      char *copy = malloc(vlen + 1);
      memcpy(copy, v, vlen);
      xattrs[nxattrs++] = (struct xattr){strdup(kv + 13), copy, vlen};
    }
    p += len;
  }
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)f;
  return (flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 && errno != ENOENT ? -1 : 0;
}

static void remove_all(const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) return;
  int r = S_ISDIR(st.st_mode) ? nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS) : unlink(path);
  if (r < 0 && errno != ENOENT) fail("internal", "removing %s: %s", path, strerror(errno));
}

/* mkdir -p of a missing parent (mode 0755, root-owned), following links like the kernel;
 * `path` is relative to the destination. */
static void implied_dirs(const char *path) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s", path);
  char *slash = strrchr(p, '/');
  if (!slash) return;
  *slash = 0;
  struct stat st;
  if (lstat(p, &st) == 0) return;
  for (char *s = p;; s++) {
    if (*s == '/' || *s == 0) {
      char c = *s;
      *s = 0;
      if (mkdir(p, 0755) == 0) {
        // SAFETY: best effort like Docker's MkdirAllAndChown; mkdir as root already made it root's.
        lchown(p, 0, 0);
      } else if (errno != EEXIST) fail("internal", "mkdir %s: %s", p, strerror(errno));
      *s = c;
      if (!c) break;
    }
  }
}

static int has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

static void entry(const char *dest, struct hdr *h, const struct extract_opts *o) {
  /* `rel`, relative to the destination (our working directory), is what we touch;
   * `path`, the destination joined with it, is what messages show (as Docker's do). */
  char name[PATH_MAX], path[PATH_MAX], joined[PATH_MAX * 3];
  clean_path(h->name, name);
  const char *rel = name[0] == '/' ? (name[1] ? name + 1 : ".") : name;
  snprintf(joined, sizeof joined, "%s/%s", dest, rel);
  clean_path(joined, path);
  if (!strcmp(rel, "..") || has_prefix(rel, "../")) fail("invalid_argument", "\"%s\" is outside of \"%s\"", name, dest);
  if (h->type == 'g') { skip(h->size); return; }
  implied_dirs(rel);
  int is_dir = h->type == '5';
  struct stat fi;
  if (lstat(rel, &fi) == 0) {
    if (o->no_overwrite_dir_non_dir && S_ISDIR(fi.st_mode) && !is_dir) fail("invalid_argument", "cannot overwrite directory \"%s\" with non-directory \"%s\"", path, dest);
    if (o->no_overwrite_dir_non_dir && !S_ISDIR(fi.st_mode) && is_dir) fail("invalid_argument", "cannot overwrite non-directory \"%s\" with directory \"%s\"", path, dest);
    if (S_ISDIR(fi.st_mode) && !strcmp(rel, ".")) { skip(h->size); return; }
    if (!(S_ISDIR(fi.st_mode) && is_dir)) remove_all(rel);
  }
  long long data = h->size;
  switch (h->type) {
  case '5':
    if (!(lstat(rel, &fi) == 0 && S_ISDIR(fi.st_mode)) && mkdir(rel, h->mode & 07777) < 0) fail("internal", "mkdir %s: %s", path, strerror(errno));
    break;
  case '0': case 0: case '7': {
    int fd = open(rel, O_CREAT | O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, h->mode & 07777);
    if (fd < 0) fail("internal", "open %s: %s", path, strerror(errno));
    long long left = h->size;
    while (left > 0) {
      size_t want = left > (long long)sizeof buf ? sizeof buf : (size_t)((left + BLOCK - 1) / BLOCK * BLOCK);
      if (!read_full(buf, want)) fail("invalid_argument", "unexpected EOF");
      size_t use = left < (long long)want ? (size_t)left : want;
      for (size_t off = 0; off < use;) {
        ssize_t n = write(fd, buf + off, use - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail(errno == ENOSPC ? "resource_exhausted" : "internal", "write %s: %s", path, strerror(errno));
        off += (size_t)n;
      }
      left -= (long long)want;
    }
    close(fd);
    data = 0;
    break;
  }
  case '3': case '4': case '6': {
    mode_t t = h->type == '3' ? S_IFCHR : h->type == '4' ? S_IFBLK : S_IFIFO;
    if (mknod(rel, t | (h->mode & 07777), makedev(h->devmajor, h->devminor)) < 0) fail("internal", "mknod %s: %s", path, strerror(errno));
    break;
  }
  case '1': { /* Docker's check: the destination joined with the target stays below it */
    char joined2[PATH_MAX * 3], target[PATH_MAX];
    snprintf(joined2, sizeof joined2, "%s/%s", dest, h->link);
    clean_path(joined2, target);
    if (!has_prefix(target, dest)) fail("invalid_argument", "invalid hardlink \"%s\" -> \"%s\"", target, h->link);
    const char *trel = target + strlen(dest);
    while (*trel == '/') trel++;
    if (link(*trel ? trel : ".", rel) < 0) fail("internal", "link %s: %s", path, strerror(errno));
    break;
  }
  case '2': { /* Docker's check: the link's directory joined with its target stays below the destination */
    char dir[PATH_MAX], joined2[PATH_MAX * 3], target[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    snprintf(joined2, sizeof joined2, "%s/%s", dir, h->link);
    clean_path(joined2, target);
    if (!has_prefix(target, dest)) fail("invalid_argument", "invalid symlink \"%s\" -> \"%s\"", target, h->link);
    if (symlink(h->link, rel) < 0) fail("internal", "symlink %s: %s", path, strerror(errno));
    break;
  }
  default:
    fail("invalid_argument", "unhandled tar header type %d", h->type);
  }
  if (data) skip(data);
  uid_t uid = o->copy_uidgid ? (uid_t)h->uid : 0;
  gid_t gid = o->copy_uidgid ? (gid_t)h->gid : 0;
  if (lchown(rel, uid, gid) < 0) fail("internal", "lchown %s: %s", path, strerror(errno));
  for (int i = 0; i < nxattrs; i++) {
    // SAFETY: unchecked like Docker, which only warns when the filesystem refuses xattrs.
    lsetxattr(rel, xattrs[i].name, xattrs[i].value, xattrs[i].len, 0);
  }
  /* chmod after chown, which may clear set-id bits; links have no mode of their own. */
  if (h->type != '2') {
    struct stat lst;
    if (!(h->type == '1' && lstat(rel, &lst) == 0 && S_ISLNK(lst.st_mode)) && chmod(rel, h->mode & 07777) < 0) fail("internal", "chmod %s: %s", path, strerror(errno));
  }
  struct timespec t[2] = {h->atime, h->mtime};
  if (t[0].tv_sec < t[1].tv_sec || (t[0].tv_sec == t[1].tv_sec && t[0].tv_nsec < t[1].tv_nsec)) t[0] = t[1];
  if (is_dir) {
    if (ndirs == capdirs) dirs = realloc(dirs, (capdirs = capdirs ? capdirs * 2 : 32) * sizeof *dirs);
    dirs[ndirs++] = (struct dir_time){strdup(rel), {t[0], t[1]}};
  } else {
    // SAFETY: times are best effort on links (Docker ignores ErrNotSupported there too).
    utimensat(AT_FDCWD, rel, t, h->type == '2' ? AT_SYMLINK_NOFOLLOW : 0);
  }
}

void tar_extract(const char *dest, const struct extract_opts *o) {
  char block[BLOCK];
  char *long_name = NULL, *long_link = NULL;
  struct hdr pax;
  int pax_set = 0;
  static struct hdr h;
  while (read_full(block, BLOCK)) {
    int zero = 1;
    for (int i = 0; i < BLOCK && zero; i++) zero = block[i] == 0;
    if (zero) break;
    unsigned sum = 0;
    int ssum = 0;
    for (int i = 0; i < BLOCK; i++) {
      unsigned char c = i >= 148 && i < 156 ? ' ' : (unsigned char)block[i];
      sum += c;
      ssum += (signed char)c;
    }
    long long recorded = number(block + 148, 8);
    if (recorded != (long long)sum && recorded != ssum) fail("invalid_argument", "archive/tar: invalid tar header");
    memset(&h, 0, sizeof h);
    h.type = block[156];
    h.mode = (unsigned)number(block + 100, 8);
    h.uid = number(block + 108, 8);
    h.gid = number(block + 116, 8);
    h.size = number(block + 124, 12);
    h.mtime.tv_sec = number(block + 136, 12);
    h.devmajor = (unsigned)number(block + 329, 8);
    h.devminor = (unsigned)number(block + 337, 8);
    if (!memcmp(block + 257, "ustar\0", 6) && block[345]) snprintf(h.name, sizeof h.name, "%.155s/%.100s", block + 345, block);
    else snprintf(h.name, sizeof h.name, "%.100s", block);
    snprintf(h.link, sizeof h.link, "%.100s", block + 157);
    if (h.type == 'L' || h.type == 'K') {
      char *d = read_data(h.size);
      if (h.type == 'L') free(long_name), long_name = d;
      else free(long_link), long_link = d;
      continue;
    }
    if (h.type == 'x') {
      char *d = read_data(h.size);
      memset(&pax, 0, sizeof pax);
      pax_set = 0;
      clear_xattrs();
      apply_pax(d, h.size, &pax, &pax_set);
      free(d);
      continue;
    }
    if (long_name) snprintf(h.name, sizeof h.name, "%s", long_name);
    if (long_link) snprintf(h.link, sizeof h.link, "%s", long_link);
    if (pax_set & 1) memcpy(h.name, pax.name, sizeof h.name);
    if (pax_set & 2) memcpy(h.link, pax.link, sizeof h.link);
    if (pax_set & 4) h.size = pax.size;
    if (pax_set & 8) h.uid = pax.uid;
    if (pax_set & 16) h.gid = pax.gid;
    if (pax_set & 32) h.mtime = pax.mtime;
    if (pax_set & 64) h.atime = pax.atime;
    free(long_name), free(long_link);
    long_name = long_link = NULL;
    pax_set = 0;
    entry(dest, &h, o);
    clear_xattrs();
  }
  for (size_t i = 0; i < ndirs; i++) {
    // SAFETY: unchecked; a directory removed by a later entry has no time to set.
    utimensat(AT_FDCWD, dirs[i].path, dirs[i].t, 0);
  }
  /* Whatever follows the archive's end is read and dropped, so the writer never blocks. */
  while (read(0, buf, sizeof buf) > 0) {}
}
