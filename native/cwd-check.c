/*
 * cwd-check IDENTITY PROGRAM [ARG...]
 *
 * Runs PROGRAM (looked up in PATH) only when the folder it starts in has IDENTITY, the
 * "device:inode" the runner read from a descriptor of the step's folder when it judged it; else
 * exits 126 saying so. Bind-mounted read-only into a step's container and run first: Docker
 * mounts the folder by path, and a step beside it could swap that path for a link to a folder
 * it may not see in between. Linked static, so it runs in any image. It loads the step filter
 * (step-filter.c) first, and runs nothing without it: in a command's own bwrap sandbox it is the
 * only thing that does.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "step-filter.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fputs("usage: cwd-check DEVICE:INODE PROGRAM [ARG...]\n", stderr);
    return 2;
  }
  if (step_filter() != 0) {
    perror("runyard: cannot load the step filter; nothing ran");
    return 126;
  }
  struct stat info;
  char actual[64];
  if (stat(".", &info) != 0) {
    perror("runyard: cannot read the step's folder");
    return 126;
  }
  snprintf(actual, sizeof actual, "%llu:%llu", (unsigned long long)info.st_dev,
           (unsigned long long)info.st_ino);
  if (strcmp(actual, argv[1]) != 0) {
    fputs("runyard: the step's folder was swapped for another after the runner checked it; nothing ran\n",
          stderr);
    return 126;
  }
  /*
   * Its stdin the sandbox's (or container's) /dev/null, not the one the runner's helper opened on
   * the host: under a root runner the step is by uid the owner of the host's node, and could
   * `chmod 0 /proc/self/fd/0`, breaking /dev/null for the whole machine.
   */
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0) {
    perror("runyard: cannot open the sandbox's /dev/null; nothing ran");
    return 126;
  }
  if (null != 0) close(null);
  execvp(argv[2], argv + 2);
  fprintf(stderr, "runyard: cannot start %s: ", argv[2]);
  perror(NULL);
  return 127;
}
