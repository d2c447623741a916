/*
 * arcbox-init: PID 1 of a machine (the initramfs's /init switch_roots to it). Runs its
 * command (stage 2) as a child, reaps every process that ends up orphaned, and forwards
 * the signals it gets (SIGTERM, SIGINT, SIGHUP, SIGUSR1, ...) to that child.
 *
 * Why not tini: tini waits for signals with a one-second timeout (sigtimedwait) and so
 * wakes the machine every second forever; an idle machine pays for each wake-up in host
 * CPU (under TCG most of all). Here PID 1 sleeps in sigwaitinfo until a signal arrives.
 *
 * If the child exits, so does PID 1 (the kernel then panics and, with panic=-1 and
 * qemu's -no-reboot, the VM ends), as with tini. Stage 2 never exits on its own.
 *
 * Usage: arcbox-init COMMAND [ARGS...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: arcbox-init COMMAND [ARGS...]\n"); return 2; }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  pid_t child = fork();
  if (child < 0) { perror("arcbox-init: fork"); return 1; }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "arcbox-init: exec %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) continue; /* EINTR */
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (pid != child) continue; /* an orphan: reaped, nothing else to do */
      fprintf(stderr, "arcbox-init: %s exited (%d)\n", argv[1], WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
}
