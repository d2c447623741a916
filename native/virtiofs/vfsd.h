/* arcbox-virtiofsd: ArcBox's vhost-user-fs backend (see native/virtiofs/README.md). */
#ifndef ARCBOX_VFSD_H
#define ARCBOX_VFSD_H
#define _GNU_SOURCE
#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <pthread.h>
#include <sys/uio.h>
#include <sys/types.h>
#include <linux/fuse.h>

#define MAX_MEM_REGIONS 8
#define MAX_QUEUES 3          /* hiprio + up to 2 request queues */
#define MAX_IOV 1024          /* descriptors per request (FUSE max_pages + headers) */
#define MAX_THREADS 64        /* --threads: worker threads for blocking requests */

enum cache_mode { CACHE_AUTO, CACHE_ALWAYS, CACHE_NEVER };

struct config {
  const char *socket_path;
  const char *shared_dir;
  const char *stats_path;
  bool read_only;
  enum cache_mode cache;
  int threads;           /* worker threads; 0: every request is answered on its queue's thread */
};
extern struct config cfg;

/* Counters shared with fsd through a MAP_SHARED stats file (layout in README.md). */
#define STATS_MAGIC 0x31534656u /* "VFS1" */
enum stat_slot {
  ST_REQUESTS, ST_ERRORS, ST_BYTES_READ, ST_BYTES_WRITTEN, ST_BATCHES, ST_NOTIFIES,
  ST_LOOKUPS, ST_INODES, ST_OPEN_HANDLES, ST_CONNECTED, ST_ESCAPES_REFUSED, ST_INODE_FDS, ST_EVICTIONS,
  ST_COUNT
};
struct stats { uint32_t magic; uint32_t version; uint64_t v[ST_COUNT]; };
extern struct stats *stats;
static inline void stat_add(enum stat_slot s, uint64_t n) { __atomic_fetch_add(&stats->v[s], n, __ATOMIC_RELAXED); }
static inline void stat_set(enum stat_slot s, uint64_t n) { __atomic_store_n(&stats->v[s], n, __ATOMIC_RELAXED); }

/* ---- guest memory ---- */
struct mem_region { uint64_t gpa, size, uva, mmap_offset; void *mmap_addr; uint64_t mmap_size; };
struct memory { int n; struct mem_region r[MAX_MEM_REGIONS]; };
void *gpa_to_va(struct memory *m, uint64_t gpa, uint64_t len);
void *uva_to_va(struct memory *m, uint64_t uva);

/* ---- a request popped from a virtqueue, as scatter lists into guest memory ---- */
struct request {
  uint16_t head;
  int n_out, n_in;           /* device-readable (guest->us), device-writable (us->guest) */
  struct iovec out[MAX_IOV];
  struct iovec in[MAX_IOV];
  size_t out_len, in_len;
};

/* fuse.c: handles one request; returns the number of bytes written into req->in. */
uint32_t fuse_handle(struct request *req);
void fuse_init_fs(void);
void fuse_reset(void);

/* iov helpers */
size_t iov_copy_from(const struct iovec *iov, int n, size_t skip, void *dst, size_t len);
size_t iov_copy_to(const struct iovec *iov, int n, size_t skip, const void *src, size_t len);
int iov_slice(const struct iovec *iov, int n, size_t skip, size_t len, struct iovec *outv, int max);

void vfsd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif
