/* The vhost-user protocol (backend side) and split-virtqueue processing.
 * The main thread serves the vhost-user socket; each started queue gets its own thread
 * that sleeps in epoll_wait on the queue's kick eventfd (and a stop eventfd) and pops
 * every available descriptor chain. The last chain of each batch is answered right there
 * (no hand-off: a lone request, the common case of one guest thread waiting on one
 * request, pays no extra wake-up) unless it is an fsync-like one; the others go to a pool
 * of worker threads (--threads), so a slow request (a cold read, an fsync, a create on a
 * slow disk) does not hold up the others.
 * Whoever answers pushes to the used ring under the queue's lock; the guest is signalled
 * per EVENT_IDX (once per inline answer, and only when the driver asked). */
#include "vfsd.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_config.h>

enum {
  VHOST_USER_GET_FEATURES = 1, VHOST_USER_SET_FEATURES = 2, VHOST_USER_SET_OWNER = 3,
  VHOST_USER_RESET_OWNER = 4, VHOST_USER_SET_MEM_TABLE = 5, VHOST_USER_SET_LOG_BASE = 6,
  VHOST_USER_SET_LOG_FD = 7, VHOST_USER_SET_VRING_NUM = 8, VHOST_USER_SET_VRING_ADDR = 9,
  VHOST_USER_SET_VRING_BASE = 10, VHOST_USER_GET_VRING_BASE = 11, VHOST_USER_SET_VRING_KICK = 12,
  VHOST_USER_SET_VRING_CALL = 13, VHOST_USER_SET_VRING_ERR = 14,
  VHOST_USER_GET_PROTOCOL_FEATURES = 15, VHOST_USER_SET_PROTOCOL_FEATURES = 16,
  VHOST_USER_GET_QUEUE_NUM = 17, VHOST_USER_SET_VRING_ENABLE = 18,
  VHOST_USER_GET_MAX_MEM_SLOTS = 36, VHOST_USER_ADD_MEM_REG = 37, VHOST_USER_REM_MEM_REG = 38,
};
#define VHOST_USER_VERSION 0x1
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY (1u << 3)
#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define PROTO_F_MQ 0
#define PROTO_F_REPLY_ACK 3
#define PROTO_F_CONFIGURE_MEM_SLOTS 15
#define VRING_FD_INVALID (1u << 8)

struct vu_region { uint64_t gpa, size, uva, mmap_offset; };
struct vu_msg {
  uint32_t request, flags, size;
  union {
    uint64_t u64;
    struct { uint32_t index, num; } state;
    struct { uint32_t index, flags; uint64_t desc, used, avail, log; } addr;
    struct { uint32_t nregions, padding; struct vu_region r[MAX_MEM_REGIONS]; } mem;
    struct { uint64_t padding; struct vu_region r; } one;
    uint8_t raw[4096];
  } p;
};
#define VU_HDR 12 /* request, flags, size; the payload follows unpadded on the wire */

struct vq {
  int index;
  unsigned num;
  uint64_t desc_uva, avail_uva, used_uva;
  struct vring_desc *desc;
  struct vring_avail *avail;
  struct vring_used *used;
  uint16_t last_avail, used_idx;
  int kick_fd, call_fd, stop_fd;
  bool have_addr, started, enabled;
  pthread_t thread;
  uint16_t signalled_used;  /* used_idx at the last notification check (EVENT_IDX) */
  bool signalled_valid;
  unsigned inflight;        /* chains handed to workers and not yet pushed (under ulock) */
  struct request req;       /* scratch for the queue's thread */
  /* Not reset with the queue: */
  pthread_mutex_t ulock;    /* the used ring, signalled_*, inflight */
  pthread_cond_t drained;   /* inflight fell to 0 */
};

static struct memory mem;
/* Guest memory and the ring pointers into it change only under the write lock (the main
 * thread); everything that touches guest memory holds the read lock. */
static pthread_rwlock_t mem_lock = PTHREAD_RWLOCK_INITIALIZER;
static struct vq queues[MAX_QUEUES] = { [0 ... MAX_QUEUES - 1] = { .ulock = PTHREAD_MUTEX_INITIALIZER, .drained = PTHREAD_COND_INITIALIZER } };
static uint64_t features, protocol_features;
static const uint64_t offered_features =
  (1ull << VIRTIO_F_VERSION_1) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
  (1ull << VIRTIO_RING_F_INDIRECT_DESC) | (1ull << VIRTIO_RING_F_EVENT_IDX);
static const uint64_t offered_protocol = (1ull << PROTO_F_MQ) | (1ull << PROTO_F_REPLY_ACK) |
  (1ull << PROTO_F_CONFIGURE_MEM_SLOTS);

/* ---------------- guest memory ---------------- */
void *gpa_to_va(struct memory *m, uint64_t gpa, uint64_t len) {
  for (int i = 0; i < m->n; i++) {
    struct mem_region *r = &m->r[i];
    if (gpa >= r->gpa && gpa - r->gpa < r->size && len <= r->size - (gpa - r->gpa))
      return (char *)r->mmap_addr + r->mmap_offset + (gpa - r->gpa);
  }
  return NULL;
}
void *uva_to_va(struct memory *m, uint64_t uva) {
  for (int i = 0; i < m->n; i++) {
    struct mem_region *r = &m->r[i];
    if (uva >= r->uva && uva - r->uva < r->size)
      return (char *)r->mmap_addr + r->mmap_offset + (uva - r->uva);
  }
  return NULL;
}
static void unmap_region(struct mem_region *r) {
  if (r->mmap_addr) munmap(r->mmap_addr, r->mmap_size);
  r->mmap_addr = NULL;
}
static int map_region(struct mem_region *r, const struct vu_region *src, int fd) {
  r->gpa = src->gpa; r->size = src->size; r->uva = src->uva; r->mmap_offset = src->mmap_offset;
  r->mmap_size = src->size + src->mmap_offset;
  void *p = mmap(NULL, r->mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) { vfsd_log("mmap guest region: %s", strerror(errno)); r->mmap_addr = NULL; return -1; }
  r->mmap_addr = p;
  return 0;
}

/* ---------------- virtqueue ---------------- */
/* With mem_lock held for writing (or the queue stopped and no worker using it). */
static void map_ring(struct vq *q) {
  q->desc = q->have_addr ? uva_to_va(&mem, q->desc_uva) : NULL;
  q->avail = q->have_addr ? uva_to_va(&mem, q->avail_uva) : NULL;
  q->used = q->have_addr ? uva_to_va(&mem, q->used_uva) : NULL;
}
static bool ring_mapped(struct vq *q) { return q->desc && q->avail && q->used; }

/* Appends the buffer [addr, addr+len) to the request's in or out list, split at
 * memory-region boundaries. */
static int add_buf(struct request *r, uint64_t addr, uint32_t len, bool writable) {
  while (len > 0) {
    struct mem_region *hit = NULL;
    for (int i = 0; i < mem.n; i++)
      if (addr >= mem.r[i].gpa && addr - mem.r[i].gpa < mem.r[i].size) { hit = &mem.r[i]; break; }
    if (!hit) return -1;
    uint64_t avail = hit->size - (addr - hit->gpa);
    uint32_t chunk = len < avail ? len : (uint32_t)avail;
    struct iovec *v = writable ? r->in : r->out;
    int *n = writable ? &r->n_in : &r->n_out;
    if (*n >= MAX_IOV) return -1;
    v[*n].iov_base = (char *)hit->mmap_addr + hit->mmap_offset + (addr - hit->gpa);
    v[*n].iov_len = chunk;
    (*n)++;
    if (writable) r->in_len += chunk; else r->out_len += chunk;
    addr += chunk; len -= chunk;
  }
  return 0;
}

/* Walks the descriptor chain at head into req. Returns 0, or -1 for a malformed chain. */
static int read_chain(struct vq *q, uint16_t head, struct request *r) {
  r->head = head; r->n_in = r->n_out = 0; r->in_len = r->out_len = 0;
  struct vring_desc *table = q->desc;
  unsigned max = q->num, i = head, seen = 0;
  bool indirect_done = false;
  for (;;) {
    if (i >= max || ++seen > max + 1) return -1;
    struct vring_desc d = table[i];
    if (d.flags & VRING_DESC_F_INDIRECT) {
      if (indirect_done || table != q->desc || d.len % sizeof(struct vring_desc)) return -1;
      table = gpa_to_va(&mem, d.addr, d.len);
      if (!table) return -1;
      max = d.len / sizeof(struct vring_desc); i = 0; seen = 0; indirect_done = true;
      continue;
    }
    bool w = d.flags & VRING_DESC_F_WRITE;
    if (!w && r->n_in > 0) return -1; /* readable after writable */
    if (add_buf(r, d.addr, d.len, w) < 0) return -1;
    if (!(d.flags & VRING_DESC_F_NEXT)) break;
    i = d.next;
  }
  return 0;
}

static inline uint16_t *used_event(struct vq *q) { return &q->avail->ring[q->num]; }
static inline uint16_t *avail_event(struct vq *q) { return (uint16_t *)&q->used->ring[q->num]; }

static bool has_event_idx(void) { return features & (1ull << VIRTIO_RING_F_EVENT_IDX); }

/* Publishes one answered chain; with q->ulock and mem_lock (read) held. */
static void push_used_locked(struct vq *q, uint16_t head, uint32_t len) {
  struct vring_used_elem *e = &q->used->ring[q->used_idx % q->num];
  e->id = head; e->len = len;
  q->used_idx++;
  __atomic_store_n(&q->used->idx, q->used_idx, __ATOMIC_RELEASE);
}

/* Signals the guest if it asked to hear about what was pushed since the last check;
 * with q->ulock and mem_lock (read) held. */
static void notify_locked(struct vq *q) {
  uint16_t old = q->signalled_used, now = q->used_idx;
  bool valid = q->signalled_valid;
  if (valid && old == now) return; /* nothing new */
  q->signalled_used = now; q->signalled_valid = true;
  __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the used index is visible before we read the driver's wishes */
  bool notify;
  if (has_event_idx()) {
    uint16_t ev = __atomic_load_n(used_event(q), __ATOMIC_ACQUIRE);
    notify = !valid || (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
  } else {
    notify = !(__atomic_load_n(&q->avail->flags, __ATOMIC_ACQUIRE) & VRING_AVAIL_F_NO_INTERRUPT);
  }
  if (notify && q->call_fd >= 0) {
    uint64_t one = 1;
    // SAFETY: an eventfd write only fails when the counter would overflow; the guest
    // is woken either way.
    (void)!write(q->call_fd, &one, sizeof one);
    stat_add(ST_NOTIFIES, 1);
  }
}

/* Reads the chain at head and answers it into guest memory; with mem_lock (read) held. */
static uint32_t answer(struct vq *q, uint16_t head, struct request *req) {
  if (read_chain(q, head, req) == 0) return fuse_handle(req);
  vfsd_log("queue %d: malformed descriptor chain at %u", q->index, head);
  return 0;
}

/* ---------------- worker pool ---------------- */
struct job { struct vq *q; uint16_t head; struct job *next; };
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;
static struct job *pool_head, *pool_tail;
static int pool_threads;

static void *worker(void *arg) {
  (void)arg;
  struct request *req = malloc(sizeof *req);
  if (!req) { vfsd_log("worker: out of memory"); return NULL; }
  for (;;) {
    pthread_mutex_lock(&pool_lock);
    while (!pool_head) pthread_cond_wait(&pool_cond, &pool_lock);
    struct job *j = pool_head;
    pool_head = j->next;
    if (!pool_head) pool_tail = NULL;
    pthread_mutex_unlock(&pool_lock);
    struct vq *q = j->q;
    /* Chains are read here, under this thread's read lock, so the scatter list points
     * into guest memory as mapped for as long as the request runs. */
    pthread_rwlock_rdlock(&mem_lock);
    uint32_t written = answer(q, j->head, req);
    pthread_mutex_lock(&q->ulock);
    push_used_locked(q, j->head, written);
    notify_locked(q);
    if (--q->inflight == 0) pthread_cond_broadcast(&q->drained);
    pthread_mutex_unlock(&q->ulock);
    pthread_rwlock_unlock(&mem_lock);
    free(j);
  }
  return NULL;
}
static void pool_start(void) {
  for (; pool_threads < cfg.threads; pool_threads++) {
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) { vfsd_log("worker thread: %s", strerror(errno)); break; }
    // SAFETY: detaching a thread we just created cannot fail; workers live as long as the process.
    (void)pthread_detach(t);
  }
}
/* Hands the chain at head to a worker; false if none can take it (answer it inline). */
static bool pool_submit(struct vq *q, uint16_t head) {
  struct job *j = malloc(sizeof *j);
  if (!j) return false;
  *j = (struct job){ .q = q, .head = head };
  pthread_mutex_lock(&q->ulock);
  q->inflight++;
  pthread_mutex_unlock(&q->ulock);
  pthread_mutex_lock(&pool_lock);
  if (pool_tail) pool_tail->next = j; else pool_head = j;
  pool_tail = j;
  pthread_cond_signal(&pool_cond);
  pthread_mutex_unlock(&pool_lock);
  return true;
}
/* Waits until every chain of q handed to workers is pushed. */
static void drain(struct vq *q) {
  pthread_mutex_lock(&q->ulock);
  while (q->inflight) pthread_cond_wait(&q->drained, &q->ulock);
  pthread_mutex_unlock(&q->ulock);
}

/* Requests that may block for milliseconds or more on the host's disk (an fsync writes
 * back everything the file has dirty). Answered here, one would hold up every request the
 * guest sends meanwhile, and its answer would hold up the signal for the ones before it. */
static bool slow_opcode(uint32_t op) {
  return op == FUSE_FSYNC || op == FUSE_FSYNCDIR || op == FUSE_SYNCFS || op == FUSE_FALLOCATE ||
         op == FUSE_COPY_FILE_RANGE;
}
/* The FUSE opcode of the chain at head (0 if it cannot be read); with mem_lock (read) held. */
static uint32_t peek_opcode(struct vq *q, uint16_t head) {
  uint32_t op = 0;
  if (read_chain(q, head, &q->req) == 0)
    // SAFETY: a chain too short for a header leaves op 0, not slow: it is answered inline,
    // where fuse_handle refuses it.
    (void)iov_copy_from(q->req.out, q->req.n_out, offsetof(struct fuse_in_header, opcode), &op, sizeof op);
  return op;
}

/* Pops every available chain: the last one is answered here (this thread is awake
 * already; waking a worker costs a scheduling delay, milliseconds on a loaded host, on
 * the path of whoever waits for it), unless it is slow (slow_opcode); the others go to
 * the workers, so a lone quick request never pays a hand-off. Each inline answer is
 * signalled before the next batch is looked at, so it never waits for a later request. */
static void process_queue(struct vq *q) {
  bool event_idx = has_event_idx();
  pthread_rwlock_rdlock(&mem_lock);
  if (!ring_mapped(q)) { pthread_rwlock_unlock(&mem_lock); return; }
  for (;;) {
    uint16_t avail_idx = __atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE);
    if (avail_idx == q->last_avail) {
      if (!event_idx) break;
      /* Tell the driver where we stopped, then look once more to close the race. */
      __atomic_store_n(avail_event(q), q->last_avail, __ATOMIC_RELEASE);
      __atomic_thread_fence(__ATOMIC_SEQ_CST);
      if (__atomic_load_n(&q->avail->idx, __ATOMIC_ACQUIRE) == q->last_avail) break;
      continue;
    }
    while (q->last_avail != avail_idx) {
      uint16_t head = q->avail->ring[q->last_avail % q->num];
      q->last_avail++;
      bool last = q->last_avail == avail_idx;
      if (pool_threads > 0 && (!last || slow_opcode(peek_opcode(q, head))) && pool_submit(q, head)) continue;
      uint32_t written = answer(q, head, &q->req);
      pthread_mutex_lock(&q->ulock);
      push_used_locked(q, head, written);
      notify_locked(q);
      pthread_mutex_unlock(&q->ulock);
    }
    stat_add(ST_BATCHES, 1);
  }
  pthread_mutex_lock(&q->ulock);
  notify_locked(q);
  pthread_mutex_unlock(&q->ulock);
  pthread_rwlock_unlock(&mem_lock);
}

static void *queue_thread(void *arg) {
  struct vq *q = arg;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0 };
  epoll_ctl(ep, EPOLL_CTL_ADD, q->kick_fd, &ev);
  ev.data.u32 = 1;
  epoll_ctl(ep, EPOLL_CTL_ADD, q->stop_fd, &ev);
  process_queue(q); /* buffers made available before the kick fd arrived */
  for (;;) {
    struct epoll_event got[2];
    int n = epoll_wait(ep, got, 2, -1);
    if (n < 0) { if (errno == EINTR) continue; break; }
    bool stop = false, kick = false;
    for (int i = 0; i < n; i++) { if (got[i].data.u32 == 1) stop = true; else kick = true; }
    if (kick) {
      uint64_t v;
      // SAFETY: a failed read just means no pending kick count; we process regardless.
      (void)!read(q->kick_fd, &v, sizeof v);
      process_queue(q);
    }
    if (stop) break;
  }
  close(ep);
  drain(q); /* every popped chain is pushed before the queue counts as stopped */
  return NULL;
}

static void start_queue(struct vq *q) {
  if (q->started || q->kick_fd < 0 || !q->have_addr || q->num == 0) return;
  q->stop_fd = eventfd(0, EFD_CLOEXEC);
  q->started = true;
  q->signalled_valid = false;
  pool_start();
  pthread_rwlock_wrlock(&mem_lock);
  map_ring(q);
  pthread_rwlock_unlock(&mem_lock);
  pthread_create(&q->thread, NULL, queue_thread, q);
}
static void stop_queue(struct vq *q) {
  if (!q->started) return;
  uint64_t one = 1;
  // SAFETY: writing 1 to a fresh eventfd cannot fail.
  (void)!write(q->stop_fd, &one, sizeof one);
  pthread_join(q->thread, NULL);
  close(q->stop_fd); q->stop_fd = -1;
  q->started = false;
}
static void reset_queue(struct vq *q, int index) {
  stop_queue(q);
  if (q->kick_fd >= 0) close(q->kick_fd);
  if (q->call_fd >= 0) close(q->call_fd);
  memset(q, 0, offsetof(struct vq, req));
  q->index = index; q->kick_fd = q->call_fd = q->stop_fd = -1;
}

void vhost_reset_all(void) {
  for (int i = 0; i < MAX_QUEUES; i++) reset_queue(&queues[i], i);
  pthread_rwlock_wrlock(&mem_lock);
  for (int i = 0; i < mem.n; i++) unmap_region(&mem.r[i]);
  mem.n = 0;
  for (int i = 0; i < MAX_QUEUES; i++) map_ring(&queues[i]);
  pthread_rwlock_unlock(&mem_lock);
  features = protocol_features = 0;
}

/* ---------------- the vhost-user socket ---------------- */
static int recv_msg(int sock, struct vu_msg *m, int *fds, int *nfds) {
  struct iovec iov = { m, VU_HDR };
  char ctrl[CMSG_SPACE(sizeof(int) * MAX_MEM_REGIONS)];
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof ctrl };
  ssize_t n;
  do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  if (n != VU_HDR) return -1;
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
      *nfds += k;
    }
  }
  if (m->size > sizeof m->p) return -1;
  size_t got = 0;
  while (got < m->size) {
    n = read(sock, (char *)&m->p + got, m->size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += n;
  }
  return 0;
}
static int send_reply(int sock, struct vu_msg *m, uint32_t size) {
  m->flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
  m->size = size;
  struct iovec iov[2] = { { m, VU_HDR }, { &m->p, size } };
  struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
  ssize_t n;
  do n = sendmsg(sock, &mh, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n == (ssize_t)(VU_HDR + size) ? 0 : -1;
}
static struct vq *queue_of(uint32_t index) {
  index &= 0xff;
  return index < MAX_QUEUES ? &queues[index] : NULL;
}

/* Handles one message; returns -1 to drop the connection. */
static int handle_msg(int sock, struct vu_msg *m, int *fds, int nfds) {
  bool need_ack = (m->flags & VHOST_USER_NEED_REPLY) && (protocol_features & (1ull << PROTO_F_REPLY_ACK));
  uint64_t status = 0;
  struct vq *q;
  int used_fds = 0;
  switch (m->request) {
  case VHOST_USER_GET_FEATURES:
    m->p.u64 = offered_features;
    return send_reply(sock, m, 8);
  case VHOST_USER_SET_FEATURES:
    features = m->p.u64 & offered_features;
    break;
  case VHOST_USER_GET_PROTOCOL_FEATURES:
    m->p.u64 = offered_protocol;
    return send_reply(sock, m, 8);
  case VHOST_USER_SET_PROTOCOL_FEATURES:
    protocol_features = m->p.u64 & offered_protocol;
    break;
  case VHOST_USER_GET_QUEUE_NUM:
    m->p.u64 = MAX_QUEUES;
    return send_reply(sock, m, 8);
  case VHOST_USER_GET_MAX_MEM_SLOTS:
    m->p.u64 = MAX_MEM_REGIONS;
    return send_reply(sock, m, 8);
  case VHOST_USER_SET_OWNER:
    break;
  case VHOST_USER_RESET_OWNER:
    vhost_reset_all();
    fuse_reset();
    break;
  case VHOST_USER_SET_MEM_TABLE: {
    uint32_t n = m->p.mem.nregions;
    if (n > MAX_MEM_REGIONS || (int)n > nfds) { status = 1; break; }
    /* Stop the rings while their mappings change; they restart right after. */
    pthread_rwlock_wrlock(&mem_lock);
    for (int i = 0; i < mem.n; i++) unmap_region(&mem.r[i]);
    mem.n = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (map_region(&mem.r[mem.n], &m->p.mem.r[i], fds[i]) == 0) mem.n++;
      else status = 1;
    }
    used_fds = n;
    for (int i = 0; i < MAX_QUEUES; i++) map_ring(&queues[i]);
    pthread_rwlock_unlock(&mem_lock);
    break;
  }
  case VHOST_USER_ADD_MEM_REG:
    if (nfds < 1 || mem.n >= MAX_MEM_REGIONS) { status = 1; break; }
    pthread_rwlock_wrlock(&mem_lock);
    if (map_region(&mem.r[mem.n], &m->p.one.r, fds[0]) == 0) mem.n++; else status = 1;
    for (int i = 0; i < MAX_QUEUES; i++) map_ring(&queues[i]);
    pthread_rwlock_unlock(&mem_lock);
    used_fds = 1;
    break;
  case VHOST_USER_REM_MEM_REG:
    pthread_rwlock_wrlock(&mem_lock);
    for (int i = 0; i < mem.n; i++) {
      if (mem.r[i].gpa == m->p.one.r.gpa && mem.r[i].size == m->p.one.r.size) {
        unmap_region(&mem.r[i]);
        mem.r[i] = mem.r[--mem.n];
        break;
      }
    }
    for (int i = 0; i < MAX_QUEUES; i++) map_ring(&queues[i]);
    pthread_rwlock_unlock(&mem_lock);
    break;
  case VHOST_USER_SET_VRING_NUM:
    if (!(q = queue_of(m->p.state.index)) || m->p.state.num == 0 || m->p.state.num > 32768 ||
        (m->p.state.num & (m->p.state.num - 1))) { status = 1; break; }
    q->num = m->p.state.num;
    break;
  case VHOST_USER_SET_VRING_ADDR:
    if (!(q = queue_of(m->p.addr.index))) { status = 1; break; }
    pthread_rwlock_wrlock(&mem_lock);
    q->desc_uva = m->p.addr.desc; q->used_uva = m->p.addr.used; q->avail_uva = m->p.addr.avail;
    q->have_addr = true;
    map_ring(q);
    pthread_rwlock_unlock(&mem_lock);
    break;
  case VHOST_USER_SET_VRING_BASE:
    if (!(q = queue_of(m->p.state.index))) { status = 1; break; }
    q->last_avail = q->used_idx = (uint16_t)m->p.state.num;
    break;
  case VHOST_USER_GET_VRING_BASE:
    if (!(q = queue_of(m->p.state.index))) return -1;
    stop_queue(q);
    m->p.state.num = q->last_avail;
    if (q->kick_fd >= 0) { close(q->kick_fd); q->kick_fd = -1; }
    if (q->call_fd >= 0) { close(q->call_fd); q->call_fd = -1; }
    q->enabled = false;
    return send_reply(sock, m, 8);
  case VHOST_USER_SET_VRING_KICK:
  case VHOST_USER_SET_VRING_CALL:
  case VHOST_USER_SET_VRING_ERR: {
    int fd = -1;
    if (!(m->p.u64 & VRING_FD_INVALID)) { if (nfds < 1) { status = 1; break; } fd = fds[0]; used_fds = 1; }
    if (!(q = queue_of((uint32_t)m->p.u64))) { if (fd >= 0) close(fd); status = 1; break; }
    if (m->request == VHOST_USER_SET_VRING_ERR) { if (fd >= 0) close(fd); break; }
    if (m->request == VHOST_USER_SET_VRING_CALL) {
      /* The queue thread reads call_fd; swap it while the thread is parked. */
      bool was = q->started;
      stop_queue(q);
      if (q->call_fd >= 0) close(q->call_fd);
      q->call_fd = fd;
      if (was) start_queue(q);
      break;
    }
    stop_queue(q);
    if (q->kick_fd >= 0) close(q->kick_fd);
    q->kick_fd = fd;
    if (fd < 0) { vfsd_log("queue %d: polling mode is not supported", q->index); status = 1; break; }
    if (!(features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) q->enabled = true;
    start_queue(q);
    break;
  }
  case VHOST_USER_SET_VRING_ENABLE:
    if (!(q = queue_of(m->p.state.index))) { status = 1; break; }
    q->enabled = m->p.state.num != 0;
    break;
  case VHOST_USER_SET_LOG_BASE:
  case VHOST_USER_SET_LOG_FD:
  default:
    vfsd_log("unsupported vhost-user request %u", m->request);
    status = 1;
    break;
  }
  for (int i = used_fds; i < nfds; i++) close(fds[i]);
  if (need_ack) { m->p.u64 = status; return send_reply(sock, m, 8); }
  return 0;
}

/* Serves one connected front-end (qemu) until it hangs up. */
void vhost_serve(int sock) {
  for (int i = 0; i < MAX_QUEUES; i++) { memset(&queues[i], 0, offsetof(struct vq, req)); queues[i].index = i; queues[i].kick_fd = queues[i].call_fd = queues[i].stop_fd = -1; }
  static struct vu_msg m;
  for (;;) {
    int fds[MAX_MEM_REGIONS], nfds = 0;
    if (recv_msg(sock, &m, fds, &nfds) < 0) break;
    if (handle_msg(sock, &m, fds, nfds) < 0) break;
  }
  vhost_reset_all();
}
