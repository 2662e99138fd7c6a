/*
 * native/sandbox-holder, the holder of a sandbox bwrap makes (sandbox-holder.c), exec'd as its
 * command and shown inside it at /run/runyard-sandbox-holder.
 */
#include <stdlib.h>
#include <sys/prctl.h>
#include "sandbox-holder.h"

int main(void) {
  /*
   * Not dumpable: it runs as the run's uid in the run's user namespace, so dumpable (as any exec
   * leaves it) a step could trace it or write its memory (/proc/<pid>/mem) and end the sandbox,
   * or keep it from reaping. The runner reads its namespaces with the rights it made them with.
   */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  /* In a clone made ahead of its run, the pipe its door says a run took it on (sandbox-clone.c). */
  const char *taken = getenv("RUNYARD_HOLDER_TAKEN_FD");
  char *end = NULL;
  long fd = taken ? strtol(taken, &end, 10) : -1;
  hold_sandbox_until_taken(taken && *taken && end && !*end && fd >= 3 && fd < 65536 ? (int)fd : -1);
}
