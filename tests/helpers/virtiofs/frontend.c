/* A minimal vhost-user-fs front-end (the part qemu plays), for tests that send FUSE
 * requests a Linux guest never would ("..", names with '/', bogus handles and node ids).
 * usage: frontend SOCKET OP... where each OP is one argv word, fields split by ':'
 *   init | lookup:PARENT:NAME | getattr:NODE | open:NODE:FLAGS | opendir:NODE
 *   read:FH:OFF:SIZE | write:FH:OFF:TEXT | create:PARENT:NAME | mkdir:PARENT:NAME
 *   unlink:PARENT:NAME | rename:PARENT:OLD:NEWPARENT:NEW | link:NODE:NEWPARENT:NAME
 *   symlink:PARENT:NAME:TARGET | readlink:NODE | setattr-size:NODE:SIZE
 *   wait      prints "wait" and blocks until a line arrives on stdin (host-side changes)
 *   bench-getattr:N              N GETATTRs of the root: round trips per second
 *   bench-files:N                N x (LOOKUP miss, CREATE, WRITE 4 KiB, FLUSH, RELEASE,
 *                                GETATTR, UNLINK, FORGET) in the root: files per second
 *   bench-read:NODE:MIB          sequential 1 MiB READs of NODE: MiB per second
 *   bench-fsync:N:K              K rounds of N (<= 31) FSYNCs of N freshly written files made
 *                                available at once: fsyncs per second (what a pool overlaps)
 *   burst:FH:N                   N READs of 4 KiB at offset 0 of FH and then a RELEASE of FH,
 *                                all made available at once with one kick (N <= 31): prints
 *   "burst ok answered=A matched=M full=F ebadf=E" (answers whose unique matched their
 *   request; reads that got 4096 bytes; reads that lost the race with the RELEASE)
 * NODE/FH may be "$N" for the node id / handle the Nth op returned (0-based). One line
 * per op: "OP ok nodeid=N mode=0OOOOOO fh=N open_flags=0xN size=N data=..." or "OP err=ERRNO". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <linux/fuse.h>
#include <linux/virtio_ring.h>

#define MEM (4u << 20)
#define QSZ 64
static int sock, kick, call;
static char *mem;
static struct vring_desc *desc;
static struct vring_avail *avail;
static struct vring_used *used;
static uint16_t avail_idx, used_seen;
static uint64_t unique = 1;
static uint64_t results[256];

static void msg(uint32_t req, const void *p, uint32_t size, int fd, void *reply, uint32_t rsize) {
  char buf[512];
  uint32_t hdr[3] = { req, 1, size };
  memcpy(buf, hdr, 12);
  memcpy(buf + 12, p, size);
  struct iovec iov = { buf, 12 + size };
  char ctrl[CMSG_SPACE(sizeof(int))];
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (fd >= 0) {
    mh.msg_control = ctrl; mh.msg_controllen = sizeof ctrl;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (sendmsg(sock, &mh, 0) < 0) { perror("sendmsg"); exit(1); }
  if (reply) {
    char r[12 + 64];
    if (recv(sock, r, 12 + rsize, MSG_WAITALL) != (ssize_t)(12 + rsize)) { fprintf(stderr, "short reply\n"); exit(1); }
    memcpy(reply, r + 12, rsize);
  }
}

/* Sends one FUSE request on request queue 1 and waits for its answer. */
static struct fuse_out_header *fuse(uint32_t opcode, uint64_t node, const void *arg, size_t len, char **data) {
  char *in = mem + 0x10000, *out = mem + 0x100000;
  struct fuse_in_header ih = { .len = sizeof ih + len, .opcode = opcode, .unique = unique++, .nodeid = node };
  memcpy(in, &ih, sizeof ih);
  memcpy(in + sizeof ih, arg, len);
  memset(out, 0, 0x10000);
  desc[0] = (struct vring_desc){ .addr = 0x10000, .len = sizeof ih + len, .flags = VRING_DESC_F_NEXT, .next = 1 };
  desc[1] = (struct vring_desc){ .addr = 0x100000, .len = 0x10000, .flags = VRING_DESC_F_WRITE };
  avail->ring[avail_idx % QSZ] = 0;
  __atomic_store_n(&avail->idx, ++avail_idx, __ATOMIC_RELEASE);
  uint64_t one = 1, v;
  if (write(kick, &one, 8) != 8) exit(1);
  while (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == used_seen)
    if (read(call, &v, 8) != 8) exit(1);
  used_seen++;
  *data = out + sizeof(struct fuse_out_header);
  return (struct fuse_out_header *)out;
}

static uint64_t num(const char *s);
static double now_s(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* Server-side cost without a guest kernel: the same requests the guest would send. */
static int bench(char **f) {
  char *data, arg[8192];
  long n = atol(f[1]);
  double t0 = now_s();
  if (!strcmp(f[0], "bench-getattr")) {
    struct fuse_getattr_in in = {0};
    for (long i = 0; i < n; i++) if (fuse(FUSE_GETATTR, 1, &in, sizeof in, &data)->error) return -1;
    printf("%s ok rate=%.0f\n", f[0], n / (now_s() - t0));
    return 0;
  }
  if (!strcmp(f[0], "bench-read")) {
    uint64_t node = num(f[1]), mib = strtoull(f[2], NULL, 0);
    struct fuse_open_in oi = { .flags = O_RDONLY };
    struct fuse_out_header *oh = fuse(FUSE_OPEN, node, &oi, sizeof oi, &data);
    if (oh->error) return -1;
    uint64_t fh = ((struct fuse_open_out *)data)->fh;
    t0 = now_s();
    for (uint64_t i = 0; i < mib; i++) {
      /* 1 MiB answers: 16 x 64 KiB writable descriptors, like a guest's page list */
      char *in = mem + 0x10000;
      struct fuse_read_in ri = { .fh = fh, .offset = i << 20, .size = 1 << 20 };
      struct fuse_in_header ih = { .len = sizeof ih + sizeof ri, .opcode = FUSE_READ, .unique = unique++, .nodeid = node };
      memcpy(in, &ih, sizeof ih); memcpy(in + sizeof ih, &ri, sizeof ri);
      desc[0] = (struct vring_desc){ .addr = 0x10000, .len = sizeof ih + sizeof ri, .flags = VRING_DESC_F_NEXT, .next = 1 };
      desc[1] = (struct vring_desc){ .addr = 0x100000, .len = sizeof(struct fuse_out_header), .flags = VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, .next = 2 };
      for (int k = 0; k < 16; k++)
        desc[2 + k] = (struct vring_desc){ .addr = 0x200000 + k * 0x10000, .len = 0x10000, .flags = VRING_DESC_F_WRITE | (k < 15 ? VRING_DESC_F_NEXT : 0), .next = 3 + k };
      avail->ring[avail_idx % QSZ] = 0;
      __atomic_store_n(&avail->idx, ++avail_idx, __ATOMIC_RELEASE);
      uint64_t one = 1, v;
      if (write(kick, &one, 8) != 8) exit(1);
      while (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == used_seen) if (read(call, &v, 8) != 8) exit(1);
      used_seen++;
      struct fuse_out_header *r = (struct fuse_out_header *)(mem + 0x100000);
      if (r->error || r->len != sizeof *r + (1u << 20)) { fprintf(stderr, "read: error %d len %u\n", r->error, r->len); return -1; }
      r->len = 0;
    }
    printf("%s ok rate=%.1f\n", f[0], mib / (now_s() - t0));
    return 0;
  }
  if (!strcmp(f[0], "bench-fsync")) {
    long k = f[2] ? atol(f[2]) : 1;
    if (n < 1 || n > 31) return -1;
    uint64_t fh[31];
    for (long i = 0; i < n; i++) {
      char name[32];
      snprintf(name, sizeof name, "fsync%ld", i);
      struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = 0100644 };
      memcpy(arg, &ci, sizeof ci); strcpy(arg + sizeof ci, name);
      struct fuse_out_header *oh = fuse(FUSE_CREATE, 1, arg, sizeof ci + strlen(name) + 1, &data);
      if (oh->error) return -1;
      fh[i] = ((struct fuse_open_out *)((struct fuse_entry_out *)data + 1))->fh;
    }
    double busy = 0;
    for (long r = 0; r < k; r++) {
      for (long i = 0; i < n; i++) { /* dirty every file again */
        struct fuse_write_in wi = { .fh = fh[i], .size = 4096 };
        memcpy(arg, &wi, sizeof wi); memset(arg + sizeof wi, 'a' + r % 26, 4096);
        if (fuse(FUSE_WRITE, 1, arg, sizeof wi + 4096, &data)->error) return -1;
      }
      for (long i = 0; i < n; i++) {
        char *in = mem + 0x10000 + i * 0x100;
        struct fuse_fsync_in fi = { .fh = fh[i] };
        struct fuse_in_header ih = { .len = sizeof ih + sizeof fi, .opcode = FUSE_FSYNC, .unique = unique++, .nodeid = 1 };
        memcpy(in, &ih, sizeof ih); memcpy(in + sizeof ih, &fi, sizeof fi);
        desc[2 * i] = (struct vring_desc){ .addr = 0x10000 + i * 0x100, .len = ih.len, .flags = VRING_DESC_F_NEXT, .next = 2 * i + 1 };
        desc[2 * i + 1] = (struct vring_desc){ .addr = 0x100000 + i * 0x2000, .len = 0x2000, .flags = VRING_DESC_F_WRITE };
        avail->ring[(avail_idx + i) % QSZ] = 2 * i;
      }
      double t1 = now_s();
      __atomic_store_n(&avail->idx, avail_idx += n, __ATOMIC_RELEASE);
      uint64_t one = 1, v;
      if (write(kick, &one, 8) != 8) exit(1);
      for (long done = 0; done < n;) {
        while (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == used_seen) if (read(call, &v, 8) != 8) exit(1);
        struct vring_used_elem e = used->ring[used_seen % QSZ];
        used_seen++; done++;
        if (((struct fuse_out_header *)(mem + 0x100000 + (e.id / 2) * 0x2000))->error) return -1;
      }
      busy += now_s() - t1;
    }
    printf("%s ok rate=%.0f\n", f[0], n * k / busy);
    return 0;
  }
  for (long i = 0; i < n; i++) { /* bench-files */
    char name[32];
    snprintf(name, sizeof name, "bench%ld", i);
    strcpy(arg, name);
    struct fuse_out_header *miss = fuse(FUSE_LOOKUP, 1, arg, strlen(name) + 1, &data);
    if (miss->error != -ENOENT && (miss->error || ((struct fuse_entry_out *)data)->nodeid)) return -1; /* ENOENT or a negative entry */
    struct fuse_create_in ci = { .flags = O_WRONLY | O_CREAT | O_EXCL, .mode = 0100644 };
    memcpy(arg, &ci, sizeof ci); strcpy(arg + sizeof ci, name);
    if (fuse(FUSE_CREATE, 1, arg, sizeof ci + strlen(name) + 1, &data)->error) return -1;
    struct fuse_entry_out *e = (void *)data;
    uint64_t node = e->nodeid, fh = ((struct fuse_open_out *)(e + 1))->fh;
    struct fuse_write_in wi = { .fh = fh, .size = 4096 };
    memcpy(arg, &wi, sizeof wi); memset(arg + sizeof wi, 'x', 4096);
    if (fuse(FUSE_WRITE, node, arg, sizeof wi + 4096, &data)->error) return -1;
    struct fuse_flush_in fi = { .fh = fh };
    if (fuse(FUSE_FLUSH, node, &fi, sizeof fi, &data)->error) return -1;
    struct fuse_release_in ri = { .fh = fh };
    if (fuse(FUSE_RELEASE, node, &ri, sizeof ri, &data)->error) return -1;
    struct fuse_getattr_in gi = {0};
    if (fuse(FUSE_GETATTR, node, &gi, sizeof gi, &data)->error) return -1;
    strcpy(arg, name);
    if (fuse(FUSE_UNLINK, 1, arg, strlen(name) + 1, &data)->error) return -1;
    struct fuse_forget_in fo = { .nlookup = 1 };
    /* FORGET has no answer: send it on the same queue and don't wait for a reply header */
    char *in = mem + 0x10000;
    struct fuse_in_header ih = { .len = sizeof ih + sizeof fo, .opcode = FUSE_FORGET, .unique = unique++, .nodeid = node };
    memcpy(in, &ih, sizeof ih); memcpy(in + sizeof ih, &fo, sizeof fo);
    desc[0] = (struct vring_desc){ .addr = 0x10000, .len = ih.len, .flags = 0 };
    avail->ring[avail_idx % QSZ] = 0;
    __atomic_store_n(&avail->idx, ++avail_idx, __ATOMIC_RELEASE);
    uint64_t one = 1, v;
    if (write(kick, &one, 8) != 8) exit(1);
    while (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == used_seen) if (read(call, &v, 8) != 8) exit(1);
    used_seen++;
  }
  printf("%s ok rate=%.0f\n", f[0], n / (now_s() - t0));
  return 0;
}

static uint64_t num(const char *s) { return s[0] == '$' ? results[atoi(s + 1)] : strtoull(s, NULL, 0); }

/* Several requests in flight at once: the server may answer them in any order. */
static int burst(char **f) {
  uint64_t fh = num(f[1]);
  int n = atoi(f[2]);
  if (n < 1 || n > 31) return -1;
  uint64_t first = unique;
  for (int i = 0; i <= n; i++) {
    char *in = mem + 0x10000 + i * 0x100;
    struct fuse_in_header ih = { .unique = unique++, .nodeid = 1 };
    if (i < n) {
      struct fuse_read_in ri = { .fh = fh, .size = 4096 };
      ih.opcode = FUSE_READ; ih.len = sizeof ih + sizeof ri;
      memcpy(in + sizeof ih, &ri, sizeof ri);
    } else {
      struct fuse_release_in ri = { .fh = fh };
      ih.opcode = FUSE_RELEASE; ih.len = sizeof ih + sizeof ri;
      memcpy(in + sizeof ih, &ri, sizeof ri);
    }
    memcpy(in, &ih, sizeof ih);
    memset(mem + 0x100000 + i * 0x2000, 0, 0x2000);
    desc[2 * i] = (struct vring_desc){ .addr = 0x10000 + i * 0x100, .len = ih.len, .flags = VRING_DESC_F_NEXT, .next = 2 * i + 1 };
    desc[2 * i + 1] = (struct vring_desc){ .addr = 0x100000 + i * 0x2000, .len = 0x2000, .flags = VRING_DESC_F_WRITE };
    avail->ring[(avail_idx + i) % QSZ] = 2 * i;
  }
  __atomic_store_n(&avail->idx, avail_idx += n + 1, __ATOMIC_RELEASE);
  uint64_t one = 1, v;
  if (write(kick, &one, 8) != 8) exit(1);
  int answered = 0, matched = 0, full = 0, ebadf = 0;
  while (answered < n + 1) {
    while (__atomic_load_n(&used->idx, __ATOMIC_ACQUIRE) == used_seen) if (read(call, &v, 8) != 8) exit(1);
    struct vring_used_elem e = used->ring[used_seen % QSZ];
    used_seen++; answered++;
    int i = (int)e.id / 2;
    struct fuse_out_header *oh = (struct fuse_out_header *)(mem + 0x100000 + i * 0x2000);
    if (e.id % 2 || i > n || oh->unique != first + i || e.len != oh->len) continue;
    matched++;
    if (i < n && !oh->error && oh->len == sizeof *oh + 4096) full++;
    if (i < n && oh->error == -EBADF) ebadf++;
  }
  printf("burst ok answered=%d matched=%d full=%d ebadf=%d\n", answered, matched, full, ebadf);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  sock = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = { .sun_family = AF_UNIX };
  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
  if (connect(sock, (struct sockaddr *)&a, sizeof a) < 0) { perror("connect"); return 1; }
  int mfd = memfd_create("guest", 0);
  if (ftruncate(mfd, MEM) < 0) return 1;
  mem = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  desc = (void *)mem; avail = (void *)(mem + 0x1000); used = (void *)(mem + 0x2000);
  uint64_t f;
  msg(3, NULL, 0, -1, NULL, 0);                         /* SET_OWNER */
  msg(1, NULL, 0, -1, &f, 8);                           /* GET_FEATURES */
  f = 1ull << 32;                                       /* VERSION_1 only */
  msg(2, &f, 8, -1, NULL, 0);
  struct { uint32_t n, pad; uint64_t gpa, size, uva, off; } mt = { 1, 0, 0, MEM, (uintptr_t)mem, 0 };
  msg(5, &mt, sizeof mt, mfd, NULL, 0);                 /* SET_MEM_TABLE */
  struct { uint32_t i, n; } st = { 1, QSZ };
  msg(8, &st, 8, -1, NULL, 0);                          /* SET_VRING_NUM */
  struct { uint32_t i, fl; uint64_t d, u, av, log; } ad = { 1, 0, (uintptr_t)desc, (uintptr_t)used, (uintptr_t)avail, 0 };
  msg(9, &ad, sizeof ad, -1, NULL, 0);                  /* SET_VRING_ADDR */
  st.n = 0; msg(10, &st, 8, -1, NULL, 0);               /* SET_VRING_BASE */
  call = eventfd(0, 0); kick = eventfd(0, 0);
  uint64_t idx = 1;
  msg(13, &idx, 8, call, NULL, 0);                      /* SET_VRING_CALL */
  msg(12, &idx, 8, kick, NULL, 0);                      /* SET_VRING_KICK */

  for (int i = 2; i < argc; i++) {
    char *w = strdup(argv[i]), *f2[6] = {0};
    int nf = 0;
    for (char *t = strtok(w, ":"); t && nf < 6; t = strtok(NULL, ":")) f2[nf++] = t;
    const char *op = f2[0];
    char arg[8192] = {0}, *data;
    size_t len = 0;
    uint32_t opc;
    uint64_t node = 0;
    if (!strcmp(op, "wait")) { printf("wait\n"); fflush(stdout); char l[64]; if (!fgets(l, sizeof l, stdin)) return 1; continue; }
    if (!strcmp(op, "burst")) { if (burst(f2) < 0) { printf("%s failed\n", argv[i]); return 1; } fflush(stdout); continue; }
    if (!strncmp(op, "bench-", 6)) { if (bench(f2) < 0) { printf("%s failed\n", argv[i]); return 1; } fflush(stdout); continue; }
    if (!strcmp(op, "init")) { struct fuse_init_in in = { .major = 7, .minor = 31, .max_readahead = 65536 }; memcpy(arg, &in, sizeof in); len = sizeof in; opc = FUSE_INIT; }
    else if (!strcmp(op, "lookup")) { node = num(f2[1]); strcpy(arg, f2[2] ? f2[2] : ""); len = strlen(arg) + 1; opc = FUSE_LOOKUP; }
    else if (!strcmp(op, "getattr")) { node = num(f2[1]); len = sizeof(struct fuse_getattr_in); opc = FUSE_GETATTR; }
    else if (!strcmp(op, "open") || !strcmp(op, "opendir")) { node = num(f2[1]); struct fuse_open_in in = { .flags = f2[2] ? (uint32_t)strtoul(f2[2], NULL, 0) : 0 }; memcpy(arg, &in, sizeof in); len = sizeof in; opc = op[4] ? FUSE_OPENDIR : FUSE_OPEN; }
    else if (!strcmp(op, "read")) { struct fuse_read_in in = { .fh = num(f2[1]), .offset = num(f2[2]), .size = (uint32_t)num(f2[3]) }; memcpy(arg, &in, sizeof in); len = sizeof in; opc = FUSE_READ; node = 1; }
    else if (!strcmp(op, "write")) { struct fuse_write_in in = { .fh = num(f2[1]), .offset = num(f2[2]), .size = (uint32_t)strlen(f2[3]) }; memcpy(arg, &in, sizeof in); memcpy(arg + sizeof in, f2[3], in.size); len = sizeof in + in.size; opc = FUSE_WRITE; node = 1; }
    else if (!strcmp(op, "create")) { node = num(f2[1]); struct fuse_create_in in = { .flags = O_RDWR, .mode = 0100644 }; memcpy(arg, &in, sizeof in); strcpy(arg + sizeof in, f2[2]); len = sizeof in + strlen(f2[2]) + 1; opc = FUSE_CREATE; }
    else if (!strcmp(op, "mkdir")) { node = num(f2[1]); struct fuse_mkdir_in in = { .mode = 0755 }; memcpy(arg, &in, sizeof in); strcpy(arg + sizeof in, f2[2]); len = sizeof in + strlen(f2[2]) + 1; opc = FUSE_MKDIR; }
    else if (!strcmp(op, "unlink")) { node = num(f2[1]); strcpy(arg, f2[2]); len = strlen(arg) + 1; opc = FUSE_UNLINK; }
    else if (!strcmp(op, "rename")) { node = num(f2[1]); struct fuse_rename_in in = { .newdir = num(f2[3]) }; memcpy(arg, &in, sizeof in); strcpy(arg + sizeof in, f2[2]); strcpy(arg + sizeof in + strlen(f2[2]) + 1, f2[4]); len = sizeof in + strlen(f2[2]) + strlen(f2[4]) + 2; opc = FUSE_RENAME; }
    else if (!strcmp(op, "link")) { node = num(f2[2]); struct fuse_link_in in = { .oldnodeid = num(f2[1]) }; memcpy(arg, &in, sizeof in); strcpy(arg + sizeof in, f2[3]); len = sizeof in + strlen(f2[3]) + 1; opc = FUSE_LINK; }
    else if (!strcmp(op, "symlink")) { node = num(f2[1]); strcpy(arg, f2[2]); strcpy(arg + strlen(f2[2]) + 1, f2[3]); len = strlen(f2[2]) + strlen(f2[3]) + 2; opc = FUSE_SYMLINK; }
    else if (!strcmp(op, "readlink")) { node = num(f2[1]); opc = FUSE_READLINK; }
    else if (!strcmp(op, "setattr-size")) { node = num(f2[1]); struct fuse_setattr_in in = { .valid = FATTR_SIZE, .size = num(f2[2]) }; memcpy(arg, &in, sizeof in); len = sizeof in; opc = FUSE_SETATTR; }
    else { fprintf(stderr, "unknown op %s\n", op); return 2; }
    struct fuse_out_header *oh = fuse(opc, node, arg, len, &data);
    if (oh->error) { printf("%s err=%d\n", argv[i], -oh->error); fflush(stdout); continue; }
    printf("%s ok", argv[i]);
    size_t dlen = oh->len - sizeof *oh;
    if (opc == FUSE_LOOKUP || opc == FUSE_MKDIR || opc == FUSE_CREATE || opc == FUSE_LINK || opc == FUSE_SYMLINK) {
      struct fuse_entry_out *e = (void *)data;
      results[i - 2] = e->nodeid;
      printf(" nodeid=%llu mode=0%o", (unsigned long long)e->nodeid, e->attr.mode);
      if (!e->nodeid) printf(" entry_valid=%llu.%09u", (unsigned long long)e->entry_valid, e->entry_valid_nsec); /* a negative entry */
      if (opc == FUSE_CREATE) { struct fuse_open_out *o = (void *)(e + 1); printf(" fh=%llu open_flags=0x%x", (unsigned long long)o->fh, o->open_flags); results[i - 2] = o->fh; }
    } else if (opc == FUSE_OPEN || opc == FUSE_OPENDIR) {
      struct fuse_open_out *o = (void *)data; results[i - 2] = o->fh; printf(" fh=%llu open_flags=0x%x", (unsigned long long)o->fh, o->open_flags);
    } else if (opc == FUSE_READ || opc == FUSE_READLINK) {
      printf(" data=%.*s", (int)dlen, data);
    } else if (opc == FUSE_WRITE) {
      printf(" size=%u", ((struct fuse_write_out *)data)->size);
    } else if (opc == FUSE_GETATTR || opc == FUSE_SETATTR) {
      printf(" mode=0%o size=%llu", ((struct fuse_attr_out *)data)->attr.mode, (unsigned long long)((struct fuse_attr_out *)data)->attr.size);
    }
    printf("\n");
    fflush(stdout);
    free(w);
  }
  return 0;
}
