/*
 * arcbox-shim start FIFO PID: what `runc start` does for a created container, without
 * runc's ~10 ms of Go start-up. `runc create` leaves the init blocked opening runc's
 * exec.fifo for writing; a reader lets it go on to execve the container process after
 * writing one byte ("0"). We open without blocking (so a dead init cannot hang us), wait
 * for that byte while the init (PID) lives, then remove the FIFO: runc reads a container
 * with no exec.fifo as running.
 * Exit 0 on success; 1 with the reason on stderr.
 */
#include "shim.h"

static int init_alive(pid_t pid) {
  char path[64], state = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  /* "pid (comm) S ...": comm may hold spaces or parens, the state follows the last ')'. */
  char buf[512];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *close_paren = strrchr(buf, ')');
  if (close_paren && close_paren[1] == ' ') state = close_paren[2];
  return state && state != 'Z' && state != 'X';
}

int start_container(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: arcbox-shim start FIFO PID\n"); return 2; }
  const char *fifo = argv[2];
  pid_t pid = (pid_t)atol(argv[3]);
  int fd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) { fprintf(stderr, "open %s: %s\n", fifo, strerror(errno)); return 1; }
  for (;;) {
    struct pollfd p = { fd, POLLIN, 0 };
    /* A FIFO never opened by a writer reports no hangup: check the init every 100 ms. */
    int r = poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) { fprintf(stderr, "poll: %s\n", strerror(errno)); return 1; }
    if (r > 0) {
      char byte;
      ssize_t k = read(fd, &byte, 1);
      if (k == 1 && byte == '0') break;
      if (k < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      /* EOF: the init opened the FIFO and died before writing */
      fprintf(stderr, "container process is already dead\n");
      return 1;
    }
    if (r == 0 && !init_alive(pid)) { fprintf(stderr, "container process is already dead\n"); return 1; }
  }
  close(fd);
  unlink(fifo);
  return 0;
}

/*
 * arcbox-shim start-write FIFO PID: what `crun start` does, without loading crun and its
 * libraries (~1.8 s under TCG). `crun create` leaves the init blocked reading its
 * exec.fifo (the other way round from runc); a writer lets it go on. The init holds the
 * read end, so a non-blocking open for writing fails (ENXIO) only when it is gone. As
 * crun: unlink the FIFO first (crun reads a container with no exec.fifo as running),
 * then write one byte.
 */
int start_container_writer(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: arcbox-shim start-write FIFO PID\n"); return 2; }
  const char *fifo = argv[2];
  pid_t pid = (pid_t)atol(argv[3]);
  int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENXIO || !init_alive(pid)) { fprintf(stderr, "container process is already dead\n"); return 1; }
    fprintf(stderr, "open %s: %s\n", fifo, strerror(errno));
    return 1;
  }
  if (unlink(fifo) < 0) { fprintf(stderr, "unlink %s: %s\n", fifo, strerror(errno)); close(fd); return 1; }
  char byte = 0;
  ssize_t k;
  do k = write(fd, &byte, 1); while (k < 0 && errno == EINTR);
  close(fd);
  /* EPIPE: the init died between our open and the write. */
  if (k != 1) { fprintf(stderr, "container process is already dead\n"); return 1; }
  return 0;
}
