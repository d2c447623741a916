/* FUSE operations over the shared directory.
 *
 * Every inode the guest knows is an O_PATH fd. Names come from the guest one component at
 * a time and are resolved relative to the parent's fd with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) after refusing "", ".", ".." and '/', so
 * a lookup can neither climb out of the share nor follow a host-side symlink; a symlink
 * is itself an inode whose target only the guest interprets. File data is opened again
 * through /proc/self/fd/<inode fd> (the same inode, no path walk), so nothing races
 * between lookup and open. Link, rename and create work on (parent fd, name) pairs that
 * all lie inside the share. */
#include "vfsd.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <linux/openat2.h>

/* ---------------- inodes ---------------- */
/* Every inode the guest knows holds an O_PATH fd while it is warm. A guest can know more
 * inodes than the process may open files (RLIMIT_NOFILE; the hard limit cannot be raised
 * without CAP_SYS_RESOURCE), so once the open inode fds reach a budget below that limit,
 * the least recently used inode no request is using is evicted: its fd is closed and
 * the inode keeps a file handle (name_to_handle_at) to reopen the very same inode with
 * open_by_handle_at when next used. The use count (refs, taken under ilock by iget)
 * guarantees no fd is closed while a request uses it: only inodes with refs 0 are on the
 * cold list, and eviction takes from that list alone. Inodes that cannot be reopened that
 * way stay pinned: the root, those on another mount (their handle would need that
 * mount's fd), and any on a filesystem without file handles. A handle names one inode
 * (number and generation), never a path, so reopening walks nothing; it resolves only
 * what the share had already handed the guest. */
struct inode {
  int fd;             /* O_PATH fd, or -1 while evicted */
  dev_t dev; ino_t ino; mode_t type;
  uint64_t nlookup;   /* references the guest holds (LOOKUP +1, FORGET -n) */
  uint32_t refs;      /* requests in flight using it */
  uint64_t id;
  struct inode *hnext;
  struct inode *cprev, *cnext;  /* on the cold list (fd open, refs 0, not pinned) */
  struct file_handle *fh;       /* set by the first eviction */
  bool cold, pinned, hashed;
};
static pthread_mutex_t ilock = PTHREAD_MUTEX_INITIALIZER;
static struct inode **itab;      /* nodeid -> inode */
static uint64_t icap, inext = 2, *ifree, nfree, capfree;
#define HBUCKETS 65536
static struct inode *hash[HBUCKETS];
static int proc_self_fd = -1;
static uint64_t ninodes;
/* Eviction state, all under ilock. */
static struct inode *cold_head, *cold_tail; /* least recently used first */
static uint64_t inode_fds, fd_budget;
static int mount_fd = -1, root_mount_id;   /* the share's mount, for open_by_handle_at */
static bool handles_work;                  /* the share's filesystem gives file handles */
#define HANDLE_MAX 128                     /* MAX_HANDLE_SZ */

static unsigned hkey(dev_t d, ino_t i) { return (unsigned)((i * 0x9E3779B97F4A7C15ull) ^ d) % HBUCKETS; }

static void cold_del(struct inode *n) {
  if (!n->cold) return;
  if (n->cprev) n->cprev->cnext = n->cnext; else cold_head = n->cnext;
  if (n->cnext) n->cnext->cprev = n->cprev; else cold_tail = n->cprev;
  n->cprev = n->cnext = NULL;
  n->cold = false;
}
/* Marks n most recently used among the inodes no request is using. */
static void cold_push(struct inode *n) {
  cold_del(n);
  if (n->pinned || n->fd < 0) return;
  n->cprev = cold_tail; n->cnext = NULL;
  if (cold_tail) cold_tail->cnext = n; else cold_head = n;
  cold_tail = n;
  n->cold = true;
}
static void fds_changed(int64_t d) { inode_fds += (uint64_t)d; stat_set(ST_INODE_FDS, inode_fds); }

/* The file handle of fd's inode and the id of the mount fd is on; NULL with errno set. */
static struct file_handle *handle_of(int fd, int *mount_id) {
  struct file_handle *h = malloc(sizeof *h + HANDLE_MAX);
  if (!h) return NULL;
  h->handle_bytes = HANDLE_MAX;
  if (name_to_handle_at(fd, "", h, mount_id, AT_EMPTY_PATH) < 0) { int e = errno; free(h); errno = e; return NULL; }
  struct file_handle *fit = realloc(h, sizeof *h + h->handle_bytes);
  return fit ? fit : h;
}
static bool same_handle(const struct file_handle *a, const struct file_handle *b) {
  return a->handle_type == b->handle_type && a->handle_bytes == b->handle_bytes && !memcmp(a->f_handle, b->f_handle, a->handle_bytes);
}

/* Closes the fd of the least recently used cold inode; false if none can be evicted.
 * An inode whose handle cannot reopen it through mount_fd (another mount, a filesystem
 * without handles, one too large) is pinned; one that failed for another reason just
 * leaves the cold list until its next use puts it back. */
static bool evict_one_locked(void) {
  if (!handles_work) return false;
  while (cold_head) {
    struct inode *n = cold_head;
    cold_del(n);
    if (!n->fh) {
      int mid = -1;
      struct file_handle *h = handle_of(n->fd, &mid);
      if (!h || mid != root_mount_id) {
        if (h || errno == EOPNOTSUPP || errno == EOVERFLOW) n->pinned = true;
        free(h);
        continue;
      }
      n->fh = h;
    }
    close(n->fd);
    n->fd = -1;
    fds_changed(-1);
    stat_add(ST_EVICTIONS, 1);
    return true;
  }
  return false;
}
static uint64_t nhandles; /* files the guest has open (hlock; read here without it) */
/* Open inode fds and the guest's open files share RLIMIT_NOFILE. At most 64 evictions
 * per call: if the guest's open files take the whole budget, later calls go on. */
static void fit_budget_locked(void) {
  uint64_t handles = __atomic_load_n(&nhandles, __ATOMIC_RELAXED);
  uint64_t budget = fd_budget > handles ? fd_budget - handles : 0;
  for (int i = 0; i < 64 && inode_fds > budget && evict_one_locked(); i++) {}
}
/* Called when an open failed with EMFILE: frees a few descriptors for one retry. */
static bool evict_for_retry(void) {
  pthread_mutex_lock(&ilock);
  int freed = 0;
  while (freed < 32 && evict_one_locked()) freed++;
  pthread_mutex_unlock(&ilock);
  return freed > 0;
}

static void ifree_locked(struct inode *n);
/* Reopens an evicted inode; 0 or -errno (ESTALE: the inode is gone from the host).
 * The handle's generation already pins one inode on ext4, xfs, btrfs and tmpfs; the
 * check of (dev, ino, type) keeps a filesystem whose handles are bare inode numbers
 * from handing an old node id another file (reopen() trusts n->type). */
static int revive_locked(struct inode *n) {
  for (int tries = 0;; tries++) {
    int fd = open_by_handle_at(mount_fd, n->fh, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      struct stat st;
      if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != n->dev || st.st_ino != n->ino || (st.st_mode & S_IFMT) != n->type) {
        close(fd);
        return -ESTALE;
      }
      n->fd = fd;
      fds_changed(1);
      return 0;
    }
    int err = errno;
    if (err != EMFILE || tries || !evict_one_locked()) return -err;
  }
}

/* Why this thread's last iget returned NULL, as a FUSE error. */
static __thread int iget_err;
static int iget_error(void) { return iget_err; }

/* The inode behind a node id, held for one request (iput), its fd open; NULL if unknown
 * (-ENOENT), gone from the host (an evicted inode that no longer reopens: -ENOENT) or
 * not reopened for another reason (that -errno), see iget_error(). */
static struct inode *iget(uint64_t id) {
  pthread_mutex_lock(&ilock);
  struct inode *n = id < icap ? itab[id] : NULL;
  iget_err = -ENOENT;
  if (n) {
    n->refs++;
    cold_del(n);
    if (n->fd < 0) {
      int err = revive_locked(n);
      if (err) {
        if (--n->refs == 0 && n->nlookup == 0) ifree_locked(n);
        n = NULL;
        iget_err = err == -ESTALE ? -ENOENT : err;
      } else {
        fit_budget_locked();
      }
    }
  }
  pthread_mutex_unlock(&ilock);
  return n;
}
/* Takes n out of the (dev, ino) hash: it can no longer be found by LOOKUP. */
static void unhash_locked(struct inode *n) {
  if (!n->hashed) return;
  struct inode **pp = &hash[hkey(n->dev, n->ino)];
  while (*pp && *pp != n) pp = &(*pp)->hnext;
  if (*pp) *pp = n->hnext;
  n->hashed = false;
}
static void ifree_locked(struct inode *n) {
  unhash_locked(n);
  cold_del(n);
  itab[n->id] = NULL;
  if (nfree == capfree) { capfree = capfree ? capfree * 2 : 1024; ifree = realloc(ifree, capfree * sizeof *ifree); }
  ifree[nfree++] = n->id;
  if (n->fd >= 0) { close(n->fd); fds_changed(-1); }
  free(n->fh);
  free(n);
  stat_set(ST_INODES, --ninodes);
}
static void iput(struct inode *n) {
  if (!n) return;
  pthread_mutex_lock(&ilock);
  if (--n->refs == 0) {
    if (n->nlookup == 0 && n->id != FUSE_ROOT_ID) ifree_locked(n);
    else cold_push(n);
  }
  pthread_mutex_unlock(&ilock);
}
static void iforget(uint64_t id, uint64_t count) {
  pthread_mutex_lock(&ilock);
  struct inode *n = id < icap ? itab[id] : NULL;
  if (n && id != FUSE_ROOT_ID) {
    n->nlookup = count >= n->nlookup ? 0 : n->nlookup - count;
    if (n->nlookup == 0 && n->refs == 0) ifree_locked(n);
  }
  pthread_mutex_unlock(&ilock);
}
/* Takes ownership of fd: returns the node id of (dev, ino), with one more lookup count. */
static uint64_t iadd(int fd, const struct stat *st) {
  pthread_mutex_lock(&ilock);
  unsigned h = hkey(st->st_dev, st->st_ino);
  for (struct inode *n = hash[h]; n; n = n->hnext) {
    if (n->dev != st->st_dev || n->ino != st->st_ino) continue;
    if (n->fd >= 0) { close(fd); }
    else {
      /* Evicted, so nothing kept its number from being reused: the same inode only if
       * its handle and type match (handles are per filesystem, whichever mount fd is
       * on). A different one leaves the old entry to fail as stale. */
      int mid;
      struct file_handle *now = handle_of(fd, &mid);
      bool same = now && same_handle(now, n->fh) && (st->st_mode & S_IFMT) == n->type;
      free(now);
      if (!same) {
        unhash_locked(n);
        break;
      }
      n->fd = fd; /* warm again with the fd just opened: no reopen later */
      fds_changed(1);
    }
    n->nlookup++;
    uint64_t id = n->id;
    if (n->refs == 0) { cold_push(n); fit_budget_locked(); }
    pthread_mutex_unlock(&ilock);
    return id;
  }
  struct inode *n = calloc(1, sizeof *n);
  if (!n) { close(fd); pthread_mutex_unlock(&ilock); return 0; }
  n->fd = fd; n->dev = st->st_dev; n->ino = st->st_ino; n->type = st->st_mode & S_IFMT; n->nlookup = 1;
  n->hashed = true;
  if (nfree) n->id = ifree[--nfree];
  else {
    n->id = inext++;
    if (n->id >= icap) {
      uint64_t cap = icap ? icap * 2 : 4096;
      itab = realloc(itab, cap * sizeof *itab);
      memset(itab + icap, 0, (cap - icap) * sizeof *itab);
      icap = cap;
    }
  }
  itab[n->id] = n;
  n->hnext = hash[h]; hash[h] = n;
  stat_set(ST_INODES, ++ninodes);
  fds_changed(1);
  cold_push(n);
  fit_budget_locked();
  uint64_t id = n->id;
  pthread_mutex_unlock(&ilock);
  return id;
}

/* ---------------- open handles ---------------- */
/* Each handle is its own allocation, so a pointer stays valid while the table grows.
 * Requests run on several threads at once (worker pool, several queues), and a guest may
 * send RELEASE while another request still uses the handle: every user holds a reference
 * (hget/hput) and the last one closes it. A directory stream is used by one request at a
 * time (dlock). */
struct handle { int fd; DIR *dir; int64_t dir_off; uint32_t refs; bool closed; pthread_mutex_t dlock; };
static pthread_mutex_t hlock = PTHREAD_MUTEX_INITIALIZER;
static struct handle **htab;
static uint64_t hcap, hhint = 1;

static uint64_t hnew(int fd, DIR *dir) {
  struct handle *h = malloc(sizeof *h);
  *h = (struct handle){ .fd = fd, .dir = dir, .dir_off = 0 };
  pthread_mutex_init(&h->dlock, NULL);
  pthread_mutex_lock(&hlock);
  uint64_t i;
  for (i = hhint; i < hcap && htab[i]; i++) {}
  if (i >= hcap) {
    for (i = 1; i < hcap && htab[i]; i++) {}
    if (i >= hcap) {
      uint64_t cap = hcap ? hcap * 2 : 256;
      htab = realloc(htab, cap * sizeof *htab);
      memset(htab + hcap, 0, (cap - hcap) * sizeof *htab);
      i = hcap ? hcap : 1;
      hcap = cap;
    }
  }
  htab[i] = h;
  hhint = i + 1;
  stat_set(ST_OPEN_HANDLES, __atomic_add_fetch(&nhandles, 1, __ATOMIC_RELAXED));
  pthread_mutex_unlock(&hlock);
  return i;
}
/* The guest's fh is an index we check, never a raw host fd. */
static struct handle *hget(uint64_t fh) {
  pthread_mutex_lock(&hlock);
  struct handle *h = fh > 0 && fh < hcap ? htab[fh] : NULL;
  if (h) h->refs++;
  pthread_mutex_unlock(&hlock);
  return h;
}
static void hdrop(struct handle *h) { if (h->dir) closedir(h->dir); else close(h->fd); pthread_mutex_destroy(&h->dlock); free(h); }
static void hput(struct handle *h) {
  if (!h) return;
  pthread_mutex_lock(&hlock);
  bool last = --h->refs == 0 && h->closed;
  pthread_mutex_unlock(&hlock);
  if (last) hdrop(h);
}
static void hclose(uint64_t fh) {
  pthread_mutex_lock(&hlock);
  struct handle *h = fh > 0 && fh < hcap ? htab[fh] : NULL;
  bool last = false;
  if (h) {
    htab[fh] = NULL;
    if (fh < hhint) hhint = fh;
    stat_set(ST_OPEN_HANDLES, __atomic_sub_fetch(&nhandles, 1, __ATOMIC_RELAXED));
    h->closed = true;
    last = h->refs == 0;
  }
  pthread_mutex_unlock(&hlock);
  if (last) hdrop(h);
}

/* ---------------- helpers ---------------- */
static double entry_timeout(void) { return cfg.cache == CACHE_NEVER ? 0 : cfg.cache == CACHE_ALWAYS ? 86400 : 1.0; }

static void fill_attr(struct fuse_attr *a, const struct stat *st) {
  memset(a, 0, sizeof *a);
  a->ino = st->st_ino; a->size = st->st_size; a->blocks = st->st_blocks;
  a->atime = st->st_atim.tv_sec; a->atimensec = st->st_atim.tv_nsec;
  a->mtime = st->st_mtim.tv_sec; a->mtimensec = st->st_mtim.tv_nsec;
  a->ctime = st->st_ctim.tv_sec; a->ctimensec = st->st_ctim.tv_nsec;
  a->mode = st->st_mode; a->nlink = st->st_nlink; a->uid = st->st_uid; a->gid = st->st_gid;
  a->rdev = st->st_rdev; a->blksize = st->st_blksize;
}
static void set_valid(uint64_t *sec, uint32_t *nsec) {
  double t = entry_timeout();
  *sec = (uint64_t)t; *nsec = (uint32_t)((t - (double)*sec) * 1e9);
}
static int istat(int fd, struct stat *st) {
  return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}
static int valid_name(const char *name) {
  if (!name[0] || strchr(name, '/')) return -EINVAL;
  if (!strcmp(name, ".") || !strcmp(name, "..")) { stat_add(ST_ESCAPES_REFUSED, 1); return -EACCES; }
  return 0;
}
static long resolve_beneath(int dirfd, const char *name, uint64_t flags, uint64_t mode) {
  struct open_how how = { .flags = flags | O_NOFOLLOW | O_CLOEXEC, .mode = mode,
    .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
  long fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
  if (fd < 0 && errno == EMFILE && evict_for_retry()) fd = syscall(SYS_openat2, dirfd, name, &how, sizeof how);
  if (fd < 0 && (errno == EXDEV || errno == ELOOP)) stat_add(ST_ESCAPES_REFUSED, 1);
  return fd < 0 ? -errno : fd;
}
/* Opens the inode itself for I/O (no path walk: /proc/self/fd/N is the inode). */
static int reopen(struct inode *n, int flags) {
  if (n->type != S_IFREG && n->type != S_IFDIR) return -ELOOP; /* symlinks, devices, fifos stay host-inert */
  char name[24];
  snprintf(name, sizeof name, "%d", n->fd);
  flags = (flags & ~(O_CREAT | O_NOFOLLOW | O_EXCL)) | O_CLOEXEC;
  int fd = openat(proc_self_fd, name, flags);
  if (fd < 0 && errno == EMFILE && evict_for_retry()) fd = openat(proc_self_fd, name, flags);
  return fd < 0 ? -errno : fd;
}
static void proc_path(char *buf, size_t len, int fd) { snprintf(buf, len, "/proc/self/fd/%d", fd); }

/* Looks name up under parent; fills e. */
static int do_lookup(struct inode *parent, const char *name, struct fuse_entry_out *e) {
  int err = valid_name(name);
  if (err) return err;
  long fd = resolve_beneath(parent->fd, name, O_PATH, 0);
  if (fd < 0) return (int)fd;
  struct stat st;
  if ((err = istat((int)fd, &st))) { close((int)fd); return err; }
  uint64_t id = iadd((int)fd, &st);
  if (!id) return -ENOMEM;
  memset(e, 0, sizeof *e);
  e->nodeid = id;
  set_valid(&e->entry_valid, &e->entry_valid_nsec);
  set_valid(&e->attr_valid, &e->attr_valid_nsec);
  fill_attr(&e->attr, &st);
  stat_add(ST_LOOKUPS, 1);
  return 0;
}

/* Creates as the calling guest user (fsuid/fsgid are per thread on Linux). */
static void as_caller(const struct fuse_in_header *ih) {
  syscall(SYS_setfsgid, ih->gid);
  syscall(SYS_setfsuid, ih->uid);
}
static void as_root(void) { syscall(SYS_setfsuid, 0); syscall(SYS_setfsgid, 0); }

/* ---------------- request plumbing ---------------- */
#define ARGBUF (128 * 1024)
#define OUTBUF (1024 * 1024 + 4096)
static __thread char *argbuf, *outbuf;

struct ctx {
  struct request *req;
  struct fuse_in_header ih;
  const char *arg; size_t arglen;
  struct handle *held[2]; /* handles this request uses, released when it is answered */
};

/* The host fd behind the guest's handle, held until the request is answered; -1 if none. */
static int hfd(struct ctx *c, uint64_t fh) {
  struct handle *h = hget(fh);
  if (!h) return -1;
  c->held[c->held[0] ? 1 : 0] = h;
  return h->fd;
}

static uint32_t reply(struct ctx *c, int err, const void *data, size_t len) {
  if (c->ih.opcode == FUSE_FORGET || c->ih.opcode == FUSE_BATCH_FORGET || c->ih.opcode == FUSE_INTERRUPT) return 0;
  if (err) { len = 0; stat_add(ST_ERRORS, 1); }
  struct fuse_out_header oh = { .len = sizeof oh + len, .error = err, .unique = c->ih.unique };
  if (c->req->in_len < oh.len) {
    oh.len = sizeof oh; oh.error = -EIO; len = 0;
    if (c->req->in_len < sizeof oh) return 0;
  }
  iov_copy_to(c->req->in, c->req->n_in, 0, &oh, sizeof oh);
  if (len) iov_copy_to(c->req->in, c->req->n_in, sizeof oh, data, len);
  return oh.len;
}
#define NEED(T) if (c->arglen < sizeof(T)) return reply(c, -EINVAL, NULL, 0); const T *in = (const T *)c->arg
/* A NUL-terminated string at off within the arguments, or NULL. */
static const char *arg_str(struct ctx *c, size_t off) {
  if (off >= c->arglen) return NULL;
  const char *s = c->arg + off;
  return memchr(s, 0, c->arglen - off) ? s : NULL;
}
#define ROFS() if (cfg.read_only) return reply(c, -EROFS, NULL, 0)

static uint32_t entry_reply(struct ctx *c, struct inode *parent, const char *name) {
  struct fuse_entry_out e;
  int err = do_lookup(parent, name, &e);
  return reply(c, err, &e, sizeof e);
}

/* ---------------- operations ---------------- */
/* Negotiated FUSE_NO_OPENDIR_SUPPORT (every mode but never): OPENDIR answers ENOSYS once,
 * after which the guest sends no OPENDIR or RELEASEDIR at all, and every READDIR(PLUS)
 * and FSYNCDIR comes with handle 0 and is served from a directory stream opened for that
 * one request. That halves the round trips of listing a directory (OPENDIR, READDIRPLUS,
 * the empty READDIRPLUS that ends it, RELEASEDIR: 4 -> 2; find and ls are little else).
 * Without an open the guest uses FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR, i.e. it caches
 * listings; under cache=auto it still checks the directory's mtime (attributes at most
 * 1 s old, FUSE_AUTO_INVAL_DATA) before reusing a listing from its start, so a host-side
 * create or unlink shows within 1 s, and its own changes drop the listing at once.
 * cache=never keeps OPENDIR: there nothing may be cached. */
static bool no_opendir;

static uint32_t op_init(struct ctx *c) {
  NEED(struct fuse_init_in);
  struct fuse_init_out out = {0};
  out.major = FUSE_KERNEL_VERSION;
  out.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor : FUSE_KERNEL_MINOR_VERSION;
  if (in->major != FUSE_KERNEL_VERSION) return reply(c, -EPROTO, NULL, 0);
  uint32_t want = FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_ATOMIC_O_TRUNC |
    FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS;
  if (cfg.cache == CACHE_AUTO) want |= FUSE_AUTO_INVAL_DATA;
  if (cfg.cache != CACHE_NEVER) want |= FUSE_NO_OPENDIR_SUPPORT;
  out.flags = in->flags & want;
  no_opendir = out.flags & FUSE_NO_OPENDIR_SUPPORT;
  out.max_readahead = in->max_readahead;
  out.max_background = 64;
  out.congestion_threshold = 48;
  out.max_pages = 256;
  out.max_write = 256 * 4096;
  out.time_gran = 1;
  return reply(c, 0, &out, sizeof out);
}

/* A miss answers a negative entry (nodeid 0 with a timeout) rather than ENOENT, so the
 * guest caches "no such name" as it caches a hit: repeated probes of missing paths
 * (module resolution, include and PATH searches, stat before create) cost no round
 * trip. Capped at 1 s in every mode, so a file created on the host shows within 1 s even
 * under cache=always; cache=never caches nothing. */
#define NEGATIVE_TIMEOUT_S 1
static uint32_t op_lookup(struct ctx *c, struct inode *n) {
  const char *name = arg_str(c, 0);
  if (!name) return reply(c, -EINVAL, NULL, 0);
  struct fuse_entry_out e;
  int err = do_lookup(n, name, &e); /* "." and ".." are refused: the guest walks those itself */
  if (err == -ENOENT && cfg.cache != CACHE_NEVER) {
    memset(&e, 0, sizeof e);
    set_valid(&e.entry_valid, &e.entry_valid_nsec);
    if (e.entry_valid >= NEGATIVE_TIMEOUT_S) { e.entry_valid = NEGATIVE_TIMEOUT_S; e.entry_valid_nsec = 0; }
    return reply(c, 0, &e, sizeof e);
  }
  return reply(c, err, &e, sizeof e);
}

static uint32_t op_getattr(struct ctx *c, struct inode *n) {
  struct stat st;
  int err = istat(n->fd, &st);
  struct fuse_attr_out out = {0};
  if (!err) { set_valid(&out.attr_valid, &out.attr_valid_nsec); fill_attr(&out.attr, &st); }
  return reply(c, err, &out, sizeof out);
}

static uint32_t op_setattr(struct ctx *c, struct inode *n) {
  NEED(struct fuse_setattr_in);
  ROFS();
  char path[40];
  proc_path(path, sizeof path, n->fd);
  int fd = (in->valid & FATTR_FH) ? hfd(c, in->fh) : -1;
  bool symlink = n->type == S_IFLNK;
  if (in->valid & FATTR_MODE) {
    int r = fd >= 0 ? fchmod(fd, in->mode) : symlink ? (errno = EOPNOTSUPP, -1) : chmod(path, in->mode);
    if (r < 0) return reply(c, -errno, NULL, 0);
  }
  if (in->valid & (FATTR_UID | FATTR_GID)) {
    uid_t u = (in->valid & FATTR_UID) ? in->uid : (uid_t)-1;
    gid_t g = (in->valid & FATTR_GID) ? in->gid : (gid_t)-1;
    if (fchownat(n->fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) return reply(c, -errno, NULL, 0);
  }
  if (in->valid & FATTR_SIZE) {
    int r;
    if (fd >= 0) r = ftruncate(fd, in->size);
    else { int w = reopen(n, O_WRONLY); if (w < 0) return reply(c, w, NULL, 0); r = ftruncate(w, in->size); close(w); }
    if (r < 0) return reply(c, -errno, NULL, 0);
  }
  if (in->valid & (FATTR_ATIME | FATTR_MTIME)) {
    struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
    if (in->valid & FATTR_ATIME_NOW) ts[0].tv_nsec = UTIME_NOW;
    else if (in->valid & FATTR_ATIME) { ts[0].tv_sec = in->atime; ts[0].tv_nsec = in->atimensec; }
    if (in->valid & FATTR_MTIME_NOW) ts[1].tv_nsec = UTIME_NOW;
    else if (in->valid & FATTR_MTIME) { ts[1].tv_sec = in->mtime; ts[1].tv_nsec = in->mtimensec; }
    int r = fd >= 0 ? futimens(fd, ts) : symlink ? (errno = EOPNOTSUPP, -1) : utimensat(AT_FDCWD, path, ts, 0);
    if (r < 0) return reply(c, -errno, NULL, 0);
  }
  return op_getattr(c, n);
}

/* FOPEN_* flags for a regular file opened with the guest's open flags.
 * FOPEN_NOFLUSH: the guest's close() then sends no FLUSH round trip. FLUSH has nothing to
 * do here: writes are write-through (no writeback cache, so write() already returned
 * any error), POSIX locks are the guest kernel's own (FUSE_POSIX_LOCKS is not offered),
 * and the only dirty guest pages a FLUSH would push are those of a shared writable
 * mmap, which needs an O_RDWR descriptor. So only O_RDWR opens keep FLUSH, and a
 * close after mmap still reaches the host as before.
 * FOPEN_DIRECT_IO for write-only opens under cache=auto: the guest then sends write()
 * data straight from the caller's pages instead of first copying it into its page cache
 * (a TCG guest copies 1 MiB in ~20-30 ms, longer than the WRITE itself), and it skips its
 * kill-privileges check, a GETXATTR security.capability round trip before every write()
 * (this server serves xattrs; see op_write for the suid/sgid bits). Nothing is lost: a
 * write-only descriptor can neither read nor be mmapped, cache=auto drops the page cache
 * at every open anyway (no FOPEN_KEEP_CACHE), and a reader that has the file open already
 * refetches on its next read() (the write marks size and mtime stale, FUSE_AUTO_INVAL_DATA
 * then drops the changed pages). cache=always keeps the page cache path: there pages are
 * kept across opens and only a size change would invalidate them. */
static uint32_t file_open_flags(uint32_t guest_flags) {
  uint32_t f = 0;
  if (cfg.cache == CACHE_ALWAYS) f |= FOPEN_KEEP_CACHE;
  else if (cfg.cache == CACHE_NEVER || (guest_flags & O_ACCMODE) == O_WRONLY) f |= FOPEN_DIRECT_IO;
  if ((guest_flags & O_ACCMODE) != O_RDWR) f |= FOPEN_NOFLUSH;
  return f;
}

static uint32_t open_flags_reply(struct ctx *c, uint64_t fh, bool dir, uint32_t guest_flags) {
  struct fuse_open_out out = { .fh = fh };
  if (dir) { if (cfg.cache == CACHE_ALWAYS) out.open_flags |= FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE; }
  else out.open_flags = file_open_flags(guest_flags);
  return reply(c, 0, &out, sizeof out);
}

static bool writes(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

static uint32_t op_open(struct ctx *c, struct inode *n) {
  NEED(struct fuse_open_in);
  if (cfg.read_only && writes(in->flags)) return reply(c, -EROFS, NULL, 0);
  if (n->type != S_IFREG) return reply(c, n->type == S_IFDIR ? -EISDIR : -EACCES, NULL, 0);
  int fd = reopen(n, in->flags);
  if (fd < 0) return reply(c, fd, NULL, 0);
  return open_flags_reply(c, hnew(fd, NULL), false, in->flags);
}

static uint32_t op_opendir(struct ctx *c, struct inode *n) {
  if (no_opendir) return reply(c, -ENOSYS, NULL, 0);
  if (n->type != S_IFDIR) return reply(c, -ENOTDIR, NULL, 0);
  int fd = reopen(n, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return reply(c, fd, NULL, 0);
  DIR *d = fdopendir(fd);
  if (!d) { int e = errno; close(fd); return reply(c, -e, NULL, 0); }
  return open_flags_reply(c, hnew(fd, d), true, 0);
}

static uint32_t readdir_locked(struct ctx *c, struct inode *n, bool plus, const struct fuse_read_in *in, struct handle *h);
/* A directory stream of n for one request (handle 0 under no_opendir); NULL with *err set. */
static DIR *open_dir_stream(struct inode *n, int *err) {
  if (n->type != S_IFDIR) { *err = -ENOTDIR; return NULL; }
  int fd = reopen(n, O_RDONLY | O_DIRECTORY);
  if (fd < 0) { *err = fd; return NULL; }
  DIR *d = fdopendir(fd);
  if (!d) { *err = -errno; close(fd); }
  return d;
}

static uint32_t op_readdir(struct ctx *c, struct inode *n, bool plus) {
  NEED(struct fuse_read_in);
  if (no_opendir && in->fh == 0) {
    /* The offset is the cookie telldir gave the previous request; seekdir on a fresh
     * stream of the same directory resumes there (lseek on the directory fd). */
    int err = 0;
    struct handle tmp = { .fd = -1, .dir_off = 0 };
    if (!(tmp.dir = open_dir_stream(n, &err))) return reply(c, err, NULL, 0);
    uint32_t len = readdir_locked(c, n, plus, in, &tmp);
    closedir(tmp.dir);
    return len;
  }
  struct handle *h = hget(in->fh);
  if (h) c->held[0] = h;
  if (!h || !h->dir) return reply(c, -EBADF, NULL, 0);
  pthread_mutex_lock(&h->dlock);
  uint32_t len = readdir_locked(c, n, plus, in, h);
  pthread_mutex_unlock(&h->dlock);
  return len;
}

static uint32_t readdir_locked(struct ctx *c, struct inode *n, bool plus, const struct fuse_read_in *in, struct handle *h) {
  size_t cap = in->size < OUTBUF ? in->size : OUTBUF, len = 0;
  if ((int64_t)in->offset != h->dir_off) {
    if (in->offset == 0) rewinddir(h->dir); else seekdir(h->dir, (long)in->offset);
    h->dir_off = (int64_t)in->offset;
  }
  for (;;) {
    long before = telldir(h->dir);
    errno = 0;
    struct dirent *de = readdir(h->dir);
    if (!de) { if (errno && len == 0) return reply(c, -errno, NULL, 0); break; }
    size_t nlen = strlen(de->d_name);
    size_t esize = plus ? FUSE_NAME_OFFSET_DIRENTPLUS + nlen : FUSE_NAME_OFFSET + nlen;
    size_t padded = FUSE_DIRENT_ALIGN(esize);
    if (len + padded > cap) { seekdir(h->dir, before); break; }
    struct fuse_dirent *d;
    if (plus) {
      struct fuse_direntplus *dp = (struct fuse_direntplus *)(outbuf + len);
      memset(dp, 0, sizeof *dp);
      bool dot = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
      if (!dot) {
        int err = do_lookup(n, de->d_name, &dp->entry_out);
        if (err) memset(&dp->entry_out, 0, sizeof dp->entry_out); /* vanished meanwhile: plain entry */
      }
      if (dot || !dp->entry_out.nodeid) { dp->entry_out.attr.ino = de->d_ino; dp->entry_out.attr.mode = (uint32_t)DTTOIF(de->d_type); }
      d = &dp->dirent;
    } else {
      d = (struct fuse_dirent *)(outbuf + len);
    }
    d->ino = de->d_ino; d->off = (uint64_t)telldir(h->dir); d->namelen = (uint32_t)nlen; d->type = de->d_type;
    memcpy(d->name, de->d_name, nlen);
    memset(d->name + nlen, 0, padded - esize);
    len += padded;
    h->dir_off = (int64_t)d->off;
  }
  return reply(c, 0, outbuf, len);
}

static uint32_t op_release(struct ctx *c) {
  NEED(struct fuse_release_in);
  hclose(in->fh);
  return reply(c, 0, NULL, 0);
}

static uint32_t op_read(struct ctx *c) {
  NEED(struct fuse_read_in);
  int fd = hfd(c, in->fh);
  if (fd < 0) return reply(c, -EBADF, NULL, 0);
  struct fuse_out_header oh = { .unique = c->ih.unique };
  if (c->req->in_len < sizeof oh) return 0;
  size_t want = in->size;
  if (want > c->req->in_len - sizeof oh) want = c->req->in_len - sizeof oh;
  static __thread struct iovec iov[MAX_IOV];
  int niov = iov_slice(c->req->in, c->req->n_in, sizeof oh, want, iov, MAX_IOV);
  ssize_t got = 0;
  while ((size_t)got < want) { /* read straight into guest memory; loop over short reads */
    ssize_t r = preadv(fd, iov, niov, (off_t)(in->offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) { if (got == 0) return reply(c, -errno, NULL, 0); break; }
    if (r == 0) break;
    got += r;
    if ((size_t)got < want) niov = iov_slice(c->req->in, c->req->n_in, sizeof oh + got, want - got, iov, MAX_IOV);
  }
  oh.len = sizeof oh + got;
  iov_copy_to(c->req->in, c->req->n_in, 0, &oh, sizeof oh);
  stat_add(ST_BYTES_READ, got);
  return oh.len;
}

/* A write by a guest process without CAP_FSETID clears the file's set-user-ID bit, and its
 * set-group-ID bit when it is group-executable, as a local write would. The guest kernel
 * does that itself (a SETATTR) before a write through its page cache, but on the direct
 * I/O path it only sets FUSE_WRITE_KILL_SUIDGID; this server writes as root, whose writes
 * keep the bits on the host, so it clears them here. (security.capability needs nothing:
 * the host kernel removes it on every write, root's included.) */
static void kill_suidgid(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return;
  mode_t kill = S_ISUID | ((st.st_mode & S_IXGRP) ? S_ISGID : 0);
  if (st.st_mode & kill) {
    // SAFETY: a failed fchmod leaves the bits as they were; the write itself succeeded
    // and is answered as such.
    (void)fchmod(fd, st.st_mode & 07777 & ~kill);
  }
}

static uint32_t op_write(struct ctx *c) {
  NEED(struct fuse_write_in);
  ROFS();
  int fd = hfd(c, in->fh);
  if (fd < 0) return reply(c, -EBADF, NULL, 0);
  size_t skip = sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in);
  if (c->req->out_len < skip + in->size) return reply(c, -EINVAL, NULL, 0);
  static __thread struct iovec iov[MAX_IOV];
  int niov = iov_slice(c->req->out, c->req->n_out, skip, in->size, iov, MAX_IOV);
  ssize_t r;
  do r = pwritev(fd, iov, niov, (off_t)in->offset); while (r < 0 && errno == EINTR);
  if (r < 0) return reply(c, -errno, NULL, 0);
  if (in->write_flags & FUSE_WRITE_KILL_SUIDGID) kill_suidgid(fd);
  stat_add(ST_BYTES_WRITTEN, r);
  struct fuse_write_out out = { .size = (uint32_t)r };
  return reply(c, 0, &out, sizeof out);
}

static uint32_t op_create(struct ctx *c, struct inode *parent) {
  NEED(struct fuse_create_in);
  ROFS();
  const char *name = arg_str(c, sizeof *in);
  if (!name) return reply(c, -EINVAL, NULL, 0);
  int err = valid_name(name);
  if (err) return reply(c, err, NULL, 0);
  as_caller(&c->ih);
  long fd = resolve_beneath(parent->fd, name, (in->flags & ~O_NOFOLLOW) | O_CREAT, in->mode & 07777);
  as_root();
  if (fd < 0) return reply(c, (int)fd, NULL, 0);
  struct { struct fuse_entry_out e; struct fuse_open_out o; } out;
  memset(&out, 0, sizeof out);
  if ((err = do_lookup(parent, name, &out.e))) { close((int)fd); return reply(c, err, NULL, 0); }
  out.o.fh = hnew((int)fd, NULL);
  out.o.open_flags = file_open_flags(in->flags);
  return reply(c, 0, &out, sizeof out);
}

static uint32_t op_make(struct ctx *c, struct inode *parent) {
  ROFS();
  const char *name, *target = NULL;
  mode_t mode = 0; dev_t rdev = 0;
  switch (c->ih.opcode) {
  case FUSE_MKDIR: { NEED(struct fuse_mkdir_in); mode = S_IFDIR | (in->mode & 07777); name = arg_str(c, sizeof *in); break; }
  case FUSE_MKNOD: { NEED(struct fuse_mknod_in); mode = in->mode; rdev = in->rdev; name = arg_str(c, sizeof *in); break; }
  default: /* SYMLINK: name, then target */
    name = arg_str(c, 0);
    if (name) target = arg_str(c, strlen(name) + 1);
    if (!target) return reply(c, -EINVAL, NULL, 0);
  }
  if (!name) return reply(c, -EINVAL, NULL, 0);
  int err = valid_name(name);
  if (err) return reply(c, err, NULL, 0);
  as_caller(&c->ih);
  int r = c->ih.opcode == FUSE_MKDIR ? mkdirat(parent->fd, name, mode & 07777)
        : c->ih.opcode == FUSE_MKNOD ? mknodat(parent->fd, name, mode, rdev)
        : symlinkat(target, parent->fd, name);
  err = r < 0 ? -errno : 0;
  as_root();
  if (err) return reply(c, err, NULL, 0);
  return entry_reply(c, parent, name);
}

static uint32_t op_link(struct ctx *c, struct inode *newparent) {
  NEED(struct fuse_link_in);
  ROFS();
  const char *name = arg_str(c, sizeof *in);
  if (!name) return reply(c, -EINVAL, NULL, 0);
  int err = valid_name(name);
  if (err) return reply(c, err, NULL, 0);
  struct inode *old = iget(in->oldnodeid);
  if (!old) return reply(c, iget_error(), NULL, 0);
  /* The source is an inode we already hold inside the share: never a path the guest names. */
  int r = linkat(old->fd, "", newparent->fd, name, AT_EMPTY_PATH);
  err = r < 0 ? -errno : 0;
  iput(old);
  if (err) return reply(c, err, NULL, 0);
  return entry_reply(c, newparent, name);
}

static uint32_t op_unlink(struct ctx *c, struct inode *parent) {
  ROFS();
  const char *name = arg_str(c, 0);
  if (!name) return reply(c, -EINVAL, NULL, 0);
  int err = valid_name(name);
  if (err) return reply(c, err, NULL, 0);
  if (unlinkat(parent->fd, name, c->ih.opcode == FUSE_RMDIR ? AT_REMOVEDIR : 0) < 0) return reply(c, -errno, NULL, 0);
  return reply(c, 0, NULL, 0);
}

static uint32_t op_rename(struct ctx *c, struct inode *parent) {
  ROFS();
  uint64_t newdir; uint32_t flags = 0; size_t off;
  if (c->ih.opcode == FUSE_RENAME2) { NEED(struct fuse_rename2_in); newdir = in->newdir; flags = in->flags; off = sizeof *in; }
  else { NEED(struct fuse_rename_in); newdir = in->newdir; off = sizeof *in; }
  const char *oldname = arg_str(c, off), *newname = oldname ? arg_str(c, off + strlen(oldname) + 1) : NULL;
  if (!newname) return reply(c, -EINVAL, NULL, 0);
  int err = valid_name(oldname);
  if (!err) err = valid_name(newname);
  if (err) return reply(c, err, NULL, 0);
  struct inode *np = iget(newdir);
  if (!np) return reply(c, iget_error(), NULL, 0);
  int r = (int)syscall(SYS_renameat2, parent->fd, oldname, np->fd, newname, flags);
  err = r < 0 ? -errno : 0;
  iput(np);
  return reply(c, err, NULL, 0);
}

static uint32_t op_readlink(struct ctx *c, struct inode *n) {
  ssize_t r = readlinkat(n->fd, "", outbuf, 4096);
  if (r < 0) return reply(c, -errno, NULL, 0);
  return reply(c, 0, outbuf, (size_t)r);
}

static uint32_t op_statfs(struct ctx *c, struct inode *n) {
  struct statfs s;
  if (fstatfs(n->fd, &s) < 0) return reply(c, -errno, NULL, 0);
  struct fuse_statfs_out out = { .st = { .blocks = s.f_blocks, .bfree = s.f_bfree, .bavail = s.f_bavail,
    .files = s.f_files, .ffree = s.f_ffree, .bsize = (uint32_t)s.f_bsize, .namelen = (uint32_t)s.f_namelen,
    .frsize = (uint32_t)s.f_frsize } };
  return reply(c, 0, &out, sizeof out);
}

static uint32_t op_fsync(struct ctx *c) {
  NEED(struct fuse_fsync_in);
  if (c->ih.opcode == FUSE_FSYNCDIR && no_opendir && in->fh == 0) {
    struct inode *n = iget(c->ih.nodeid);
    if (!n) return reply(c, iget_error(), NULL, 0);
    int err = 0;
    DIR *d = open_dir_stream(n, &err);
    iput(n);
    if (!d) return reply(c, err, NULL, 0);
    int r = (in->fsync_flags & 1) ? fdatasync(dirfd(d)) : fsync(dirfd(d));
    err = r < 0 ? -errno : 0;
    closedir(d);
    return reply(c, err, NULL, 0);
  }
  int fd = hfd(c, in->fh);
  if (fd < 0) return reply(c, -EBADF, NULL, 0);
  int r = (in->fsync_flags & 1) ? fdatasync(fd) : fsync(fd);
  return reply(c, r < 0 ? -errno : 0, NULL, 0);
}

static uint32_t op_flush(struct ctx *c) {
  NEED(struct fuse_flush_in);
  int fd = hfd(c, in->fh);
  if (fd < 0) return reply(c, -EBADF, NULL, 0);
  /* close() of a duplicate drops this owner's POSIX locks, as a local close would. */
  int d = dup(fd);
  if (d >= 0) close(d);
  return reply(c, 0, NULL, 0);
}

/* xattrs go through /proc/self/fd/N (following the magic link lands on the inode itself);
 * symlinks have none we expose. */
static uint32_t op_xattr(struct ctx *c, struct inode *n) {
  char path[40];
  proc_path(path, sizeof path, n->fd);
  uint32_t op = c->ih.opcode;
  if (op == FUSE_SETXATTR || op == FUSE_REMOVEXATTR) ROFS();
  if (n->type == S_IFLNK) return reply(c, op == FUSE_LISTXATTR ? 0 : -EPERM, NULL, 0);
  if (n->type != S_IFREG && n->type != S_IFDIR) return reply(c, -EPERM, NULL, 0);
  switch (op) {
  case FUSE_GETXATTR:
  case FUSE_LISTXATTR: {
    NEED(struct fuse_getxattr_in);
    const char *name = NULL;
    if (op == FUSE_GETXATTR && !(name = arg_str(c, sizeof *in))) return reply(c, -EINVAL, NULL, 0);
    size_t cap = in->size > OUTBUF ? OUTBUF : in->size;
    ssize_t r = op == FUSE_GETXATTR ? getxattr(path, name, cap ? outbuf : NULL, cap)
                                    : listxattr(path, cap ? outbuf : NULL, cap);
    if (r < 0) return reply(c, -errno, NULL, 0);
    if (in->size == 0) { struct fuse_getxattr_out out = { .size = (uint32_t)r }; return reply(c, 0, &out, sizeof out); }
    return reply(c, 0, outbuf, (size_t)r);
  }
  case FUSE_SETXATTR: {
    NEED(struct fuse_setxattr_in);
    size_t off = FUSE_COMPAT_SETXATTR_IN_SIZE;
    const char *name = arg_str(c, off);
    if (!name) return reply(c, -EINVAL, NULL, 0);
    size_t voff = off + strlen(name) + 1;
    if (voff + in->size > c->arglen) return reply(c, -EINVAL, NULL, 0);
    int r = setxattr(path, name, c->arg + voff, in->size, (int)in->flags);
    return reply(c, r < 0 ? -errno : 0, NULL, 0);
  }
  default: { /* REMOVEXATTR */
    const char *name = arg_str(c, 0);
    if (!name) return reply(c, -EINVAL, NULL, 0);
    return reply(c, removexattr(path, name) < 0 ? -errno : 0, NULL, 0);
  }
  }
}

static uint32_t op_lseek(struct ctx *c) {
  NEED(struct fuse_lseek_in);
  int fd = hfd(c, in->fh);
  if (fd < 0) return reply(c, -EBADF, NULL, 0);
  off_t r = lseek(fd, (off_t)in->offset, (int)in->whence);
  if (r < 0) return reply(c, -errno, NULL, 0);
  struct fuse_lseek_out out = { .offset = (uint64_t)r };
  return reply(c, 0, &out, sizeof out);
}

static uint32_t op_fallocate(struct ctx *c) {
  NEED(struct fuse_fallocate_in);
  ROFS();
  int fd = hfd(c, in->fh);
  if (fd < 0) return reply(c, -EBADF, NULL, 0);
  int r = fallocate(fd, (int)in->mode, (off_t)in->offset, (off_t)in->length);
  return reply(c, r < 0 ? -errno : 0, NULL, 0);
}

static uint32_t op_copy_file_range(struct ctx *c) {
  NEED(struct fuse_copy_file_range_in);
  ROFS();
  int fin = hfd(c, in->fh_in), fout = hfd(c, in->fh_out);
  if (fin < 0 || fout < 0) return reply(c, -EBADF, NULL, 0);
  loff_t oi = (loff_t)in->off_in, oo = (loff_t)in->off_out;
  ssize_t r = copy_file_range(fin, &oi, fout, &oo, in->len, (unsigned)in->flags);
  if (r < 0) return reply(c, -errno, NULL, 0);
  struct fuse_write_out out = { .size = (uint32_t)r };
  return reply(c, 0, &out, sizeof out);
}

static uint32_t op_forget(struct ctx *c) {
  if (c->ih.opcode == FUSE_FORGET) {
    if (c->arglen >= sizeof(struct fuse_forget_in)) iforget(c->ih.nodeid, ((const struct fuse_forget_in *)c->arg)->nlookup);
    return 0;
  }
  if (c->arglen < sizeof(struct fuse_batch_forget_in)) return 0;
  const struct fuse_batch_forget_in *b = (const void *)c->arg;
  const struct fuse_forget_one *one = (const void *)(b + 1);
  size_t max = (c->arglen - sizeof *b) / sizeof *one;
  for (size_t i = 0; i < b->count && i < max; i++) iforget(one[i].nodeid, one[i].nlookup);
  return 0;
}

/* Drops every inode but the root and closes every handle (DESTROY, device reset). */
void fuse_reset(void) {
  pthread_mutex_lock(&hlock);
  for (uint64_t i = 1; i < hcap; i++)
    if (htab[i]) { hdrop(htab[i]); htab[i] = NULL; }
  __atomic_store_n(&nhandles, 0, __ATOMIC_RELAXED); hhint = 1; stat_set(ST_OPEN_HANDLES, 0);
  pthread_mutex_unlock(&hlock);
  pthread_mutex_lock(&ilock);
  for (uint64_t i = 2; i < icap; i++) if (itab[i]) { itab[i]->refs = 0; ifree_locked(itab[i]); }
  pthread_mutex_unlock(&ilock);
}

/* Eviction needs file handles for the share's filesystem and a non-O_PATH fd of its
 * mount (open_by_handle_at refuses O_PATH ones). The budget leaves room below the soft
 * fd limit for the server's own descriptors: sockets, eventfds, the stats file, and the
 * one or two each request thread opens for a moment. */
static void init_eviction(int root_fd) {
  struct rlimit rl;
  uint64_t limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 1u << 20;
  uint64_t reserve = 64 + 2 * (uint64_t)cfg.threads;
  fd_budget = limit > 2 * reserve ? limit - reserve : limit / 2;
  /* Tried once on the root: the filesystem may give handles it cannot decode (some FUSE
   * file systems), or the process may lack CAP_DAC_READ_SEARCH. */
  mount_fd = open(cfg.shared_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct file_handle *h = mount_fd >= 0 ? handle_of(root_fd, &root_mount_id) : NULL;
  int fd = h ? open_by_handle_at(mount_fd, h, O_PATH | O_CLOEXEC) : -1;
  handles_work = fd >= 0;
  const char *why = handles_work ? NULL : strerror(errno);
  if (fd >= 0) close(fd);
  free(h);
  if (!handles_work) {
    vfsd_log("no file handles on %s (%s): the guest can hold at most %llu inodes", cfg.shared_dir, why, (unsigned long long)fd_budget);
    if (mount_fd >= 0) close(mount_fd);
    mount_fd = -1;
  }
}

void fuse_init_fs(void) {
  proc_self_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (proc_self_fd < 0) { vfsd_log("open /proc/self/fd: %s", strerror(errno)); exit(1); }
  int fd = open(cfg.shared_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) { vfsd_log("open %s: %s", cfg.shared_dir, strerror(errno)); exit(1); }
  struct stat st;
  if (istat(fd, &st)) { vfsd_log("stat %s: %s", cfg.shared_dir, strerror(errno)); exit(1); }
  icap = 4096; itab = calloc(icap, sizeof *itab);
  struct inode *root = calloc(1, sizeof *root);
  root->fd = fd; root->dev = st.st_dev; root->ino = st.st_ino; root->type = S_IFDIR; root->nlookup = 1; root->id = FUSE_ROOT_ID;
  root->pinned = root->hashed = true;
  itab[FUSE_ROOT_ID] = root;
  hash[hkey(st.st_dev, st.st_ino)] = root;
  ninodes = 1; stat_set(ST_INODES, 1);
  fds_changed(1);
  init_eviction(fd);
}

/* INIT and DESTROY (which drops every inode and handle) run alone; every other request
 * runs alongside others, on whichever thread serves it. */
static uint32_t handle_locked(struct ctx *c);
static pthread_rwlock_t session_lock = PTHREAD_RWLOCK_INITIALIZER;

uint32_t fuse_handle(struct request *req) {
  if (!argbuf) { argbuf = malloc(ARGBUF); outbuf = malloc(OUTBUF); }
  uint32_t op = 0;
  // SAFETY: a chain too short for a header leaves op 0 (not INIT/DESTROY); handle_locked
  // then refuses it.
  (void)iov_copy_from(req->out, req->n_out, offsetof(struct fuse_in_header, opcode), &op, sizeof op);
  bool alone = op == FUSE_INIT || op == FUSE_DESTROY;
  if (alone) pthread_rwlock_wrlock(&session_lock); else pthread_rwlock_rdlock(&session_lock);
  struct ctx cx = { .req = req };
  uint32_t len = handle_locked(&cx);
  hput(cx.held[0]);
  hput(cx.held[1]);
  pthread_rwlock_unlock(&session_lock);
  return len;
}

static uint32_t handle_locked(struct ctx *c) {
  struct request *req = c->req;
  if (iov_copy_from(req->out, req->n_out, 0, &c->ih, sizeof c->ih) < sizeof c->ih) return 0;
  stat_add(ST_REQUESTS, 1);
  size_t total = req->out_len < c->ih.len ? req->out_len : c->ih.len;
  size_t alen = total > sizeof c->ih ? total - sizeof c->ih : 0;
  if (c->ih.opcode == FUSE_WRITE && alen > sizeof(struct fuse_write_in)) alen = sizeof(struct fuse_write_in); /* data stays in guest memory */
  if (alen > ARGBUF - 1) return reply(c, -EINVAL, NULL, 0);
  c->arglen = iov_copy_from(req->out, req->n_out, sizeof c->ih, argbuf, alen);
  argbuf[c->arglen] = 0;
  c->arg = argbuf;

  switch (c->ih.opcode) { /* operations that need no inode */
  case FUSE_INIT: return op_init(c);
  case FUSE_DESTROY: fuse_reset(); return reply(c, 0, NULL, 0);
  case FUSE_FORGET: case FUSE_BATCH_FORGET: return op_forget(c);
  case FUSE_INTERRUPT: return 0;
  case FUSE_READ: return op_read(c);
  case FUSE_WRITE: return op_write(c);
  case FUSE_RELEASE: case FUSE_RELEASEDIR: return op_release(c);
  case FUSE_FSYNC: case FUSE_FSYNCDIR: return op_fsync(c);
  case FUSE_FLUSH: return op_flush(c);
  case FUSE_LSEEK: return op_lseek(c);
  case FUSE_FALLOCATE: return op_fallocate(c);
  case FUSE_COPY_FILE_RANGE: return op_copy_file_range(c);
  case FUSE_SYNCFS: { struct inode *r = iget(FUSE_ROOT_ID); int e = syncfs(r->fd) < 0 ? -errno : 0; iput(r); return reply(c, e, NULL, 0); }
  default: break;
  }
  struct inode *n = iget(c->ih.nodeid);
  if (!n) return reply(c, iget_error(), NULL, 0);
  uint32_t len;
  switch (c->ih.opcode) {
  case FUSE_LOOKUP: len = op_lookup(c, n); break;
  case FUSE_GETATTR: len = op_getattr(c, n); break;
  case FUSE_SETATTR: len = op_setattr(c, n); break;
  case FUSE_OPEN: len = op_open(c, n); break;
  case FUSE_OPENDIR: len = op_opendir(c, n); break;
  case FUSE_READDIR: len = op_readdir(c, n, false); break;
  case FUSE_READDIRPLUS: len = op_readdir(c, n, true); break;
  case FUSE_CREATE: len = op_create(c, n); break;
  case FUSE_MKDIR: case FUSE_MKNOD: case FUSE_SYMLINK: len = op_make(c, n); break;
  case FUSE_LINK: len = op_link(c, n); break;
  case FUSE_UNLINK: case FUSE_RMDIR: len = op_unlink(c, n); break;
  case FUSE_RENAME: case FUSE_RENAME2: len = op_rename(c, n); break;
  case FUSE_READLINK: len = op_readlink(c, n); break;
  case FUSE_STATFS: len = op_statfs(c, n); break;
  case FUSE_GETXATTR: case FUSE_SETXATTR: case FUSE_LISTXATTR: case FUSE_REMOVEXATTR: len = op_xattr(c, n); break;
  default: len = reply(c, -ENOSYS, NULL, 0); break; /* ACCESS (default_permissions), locks, ioctl, poll */
  }
  iput(n);
  return len;
}
