/*
 * The process a run's sandbox is built around (src/exec/sandbox/run-sandbox.ts): it ignores
 * SIGTERM (the fork-server's stop of every group gives the run's commands their grace first),
 * says when the sandbox is ready, and lives as long as the sandbox. In a sandbox bwrap makes it is
 * its own static program (sandbox-holder-main.c), which costs one exec where
 * `sh -c '...; exec sleep infinity'` cost two of dynamic programs. In a sandbox cloned from a
 * template (sandbox-clone.c) it is pid 1, the clone's own process, not exec'd: it reaps what the
 * run's commands leave (in bwrap's, bwrap's own pid 1 does, and it has no child).
 */
#include "sandbox-holder.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Wakes sigsuspend() for each child that ends: the default action would not. */
static void child_ended(int signal) {
  (void)signal;
}

void hold_sandbox(void) {
  hold_sandbox_until_taken(-1);
}

void hold_sandbox_until_taken(int taken) {
  signal(SIGTERM, SIG_IGN);
  signal(SIGCHLD, child_ended);
  sigset_t chld, waiting;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &waiting);
  sigdelset(&waiting, SIGCHLD);
  static const char ready[] = "runyard-sandbox-ready\n";
  if (write(2, ready, sizeof ready - 1) < 0) _exit(1);
  /*
   * Nothing more is said: its output pipes are let go, as the runner reads no further; and its
   * stdin is the sandbox's /dev/null, not the host's the helper gave it.
   */
  int null = open("/dev/null", O_RDWR);
  if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(1);
  if (null > 2) close(null);
  /*
   * A clone made ahead of its run waits here for its door's word that a run took it: its door,
   * which dies with the fork-server, gone before that (the runner killed outright), it ends, and
   * with it its namespaces. No step ran in it, so none loses its grace.
   */
  if (taken >= 0) {
    char word;
    ssize_t n;
    while ((n = read(taken, &word, 1)) < 0 && errno == EINTR) continue;
    if (n != 1) _exit(0);
    close(taken);
  }
  for (;;) {
    while (waitpid(-1, NULL, WNOHANG) > 0) continue;
    sigsuspend(&waiting); /* SIGCHLD blocked between the reap and here: none is missed */
  }
}
