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
 * Usage: arcbox-init [--machine-setup] COMMAND [ARGS...]
 *        arcbox-init --print-shares KERNEL_CMDLINE (what arcbox.mounts= would mount)
 *   --machine-setup: first do the part of a machine's stage 2 that stands before the host
 *   is answered (machine-setup.c), then run the serial relay beside COMMAND and restart
 *   it (after 1 s) whenever it exits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "machine-setup.h"

static time_t monotonic_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec;
}

static void print_share(const char *tag, const char *dir, int ro) { printf("%s|%s|%s\n", tag, dir, ro ? "ro" : ""); }

int main(int argc, char **argv) {
  /* What a machine with this kernel command line mounts (tests, diagnostics). */
  if (argc == 3 && !strcmp(argv[1], "--print-shares")) {
    for_each_share(argv[2], print_share);
    return 0;
  }
  int machine = argc > 1 && !strcmp(argv[1], "--machine-setup");
  if (machine) {
    machine_setup();
    argv[1] = argv[0];
    argv++;
    argc--;
  }
  if (argc < 2) { fprintf(stderr, "usage: arcbox-init [--machine-setup] COMMAND [ARGS...]\n"); return 2; }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);
  /* A machine's serial relay first: it answers the host while stage 2 starts the rest. */
  pid_t relay = machine ? start_relay() : -1;
  pid_t child = fork();
  if (child < 0) { perror("arcbox-init: fork"); return 1; }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    execvp(argv[1], argv + 1);
    fprintf(stderr, "arcbox-init: exec %s: %s\n", argv[1], strerror(errno));
    _exit(127);
  }
  int relay_due = 0; /* the relay exited: start it again after a pause */
  time_t relay_pause = 1, relay_started = monotonic_s();
  for (;;) {
    siginfo_t si;
    /* Asleep until a signal; with a relay restart due, for the pause at most. */
    struct timespec pause = { relay_pause, 0 };
    int sig = relay_due ? sigtimedwait(&all, &si, &pause) : sigwaitinfo(&all, &si);
    if (sig < 0) {
      if (errno == EAGAIN && relay_due) {
        relay_due = 0;
        relay = start_relay();
        relay_started = monotonic_s();
      }
      continue; /* EINTR */
    }
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      if (pid == relay) {
        /* One that ran a while comes back at once; one that keeps failing, less often. */
        relay_pause = monotonic_s() - relay_started > 10 ? 1 : relay_pause * 2 > 60 ? 60 : relay_pause * 2;
        fprintf(stderr, "arcbox: serial relay exited (%d); restarting in %ld s\n", code, (long)relay_pause);
        relay = -1;
        relay_due = 1;
        continue;
      }
      if (pid != child) continue; /* an orphan: reaped, nothing else to do */
      fprintf(stderr, "arcbox-init: %s exited (%d)\n", argv[1], code);
      return code;
    }
  }
}
