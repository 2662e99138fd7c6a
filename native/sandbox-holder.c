/*
 * The process a run's sandbox is built around (src/exec/sandbox/run-sandbox.ts): it ignores
 * SIGTERM (the fork-server's stop of every group gives the run's commands their grace first),
 * says when the sandbox is ready, and lives as long as the sandbox. Static and alone, it costs the
 * sandbox one exec, where `sh -c '...; exec sleep infinity'` cost two of dynamic programs.
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

int main(void) {
  signal(SIGTERM, SIG_IGN);
  static const char ready[] = "runyard-sandbox-ready\n";
  if (write(2, ready, sizeof ready - 1) < 0) return 1;
  /* Nothing more is said: its output pipes are let go, as the runner reads no further. */
  int null = open("/dev/null", O_RDWR);
  if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) return 1;
  if (null > 2) close(null);
  for (;;) pause();
}
