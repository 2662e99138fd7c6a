/*
 * How runyard's fork-server enters a run's sandbox (see fork-server.c, ops 'E', 'W', 'O', 'D'):
 * the pids cgroup and namespaces of the process a run's sandbox keeps alive, joined with every
 * capability dropped. The doors that enter once per sandbox are sandbox-door.c's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include "fork-server.h"
#include "step-filter.h"

sigset_t original_mask;

/*
 * A child of this helper, before it runs anything of a step's: no one but this helper may look
 * into it, and it keeps no descriptor of the helper's but `keep` (and 0 to 2). Until its exec it
 * is a copy of the helper (a door's commands), or shares its memory (spawn_command's, whose
 * helper is undumpable from its start): the runner's environment (its operator's keys) and memory (other
 * runs' requests and output), the event pipe to the runner, the output pipes of every other
 * step. A child that enters a run's sandbox is seen there (its pid namespace, its uid) before
 * its exec; not dumpable, neither /proc/<pid>/environ, fd, mem nor ptrace reach it from there
 * (that takes CAP_SYS_PTRACE where the helper started), and exec makes the step's own program
 * dumpable again. Descriptors marked close-on-exec are still open until the exec: closed here.
 */
void seal_child(int keep) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (keep > 3 && syscall(SYS_close_range, 3, keep - 1, 0) < 0)
    for (int fd = 3; fd < keep; fd++) close(fd);
  if (syscall(SYS_close_range, keep + 1, ~0U, 0) < 0) {
    struct rlimit limit;
    long last = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < 1048576 ? (long)limit.rlim_cur : 1048576;
    for (long fd = keep + 1; fd < last; fd++) close((int)fd);
  }
}

int parse_command(const char *body, uint32_t length, const char **cwd, char ***argv, char ***envp) {
  if (length < 8) return errno = EINVAL, -1;
  uint32_t argc, envc;
  memcpy(&argc, body, 4);
  memcpy(&envc, body + 4, 4);
  const char *p = body + 8, *end = body + length;
  *argv = calloc(argc + 1, sizeof(char *));
  *envp = calloc(envc + 1, sizeof(char *));
  if (!*argv || !*envp) return free(*argv), free(*envp), errno = ENOMEM, -1;
  *cwd = p;
  p += strnlen(p, (size_t)(end - p)) + 1;
  for (uint32_t i = 0; i < argc && p < end; i++, p += strnlen(p, (size_t)(end - p)) + 1) (*argv)[i] = (char *)p;
  for (uint32_t i = 0; i < envc && p < end; i++, p += strnlen(p, (size_t)(end - p)) + 1) (*envp)[i] = (char *)p;
  return 0;
}

int *exec_reached;

void run_command(const char *cwd, char **argv, char **envp, int in, int out, int err, int report) {
  int32_t why[2] = {in < 0 ? errno : 0, 0};
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* at once: see seal_child */
  if (!why[0] && (setsid() < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)) why[0] = errno;
  if (!why[0]) {
    seal_child(report);
    if (*cwd && chdir(cwd) < 0) {
      why[0] = errno, why[1] = 1;
    } else {
      /* Every disposition the helper changed back to the default, as Node's spawn leaves them. */
      signal(SIGPIPE, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      signal(SIGHUP, SIG_DFL);
      sigprocmask(SIG_SETMASK, &original_mask, NULL);
      environ = envp;
      if (exec_reached) *exec_reached = 1;
      execvp(argv[0], argv);
      why[0] = errno, why[1] = 2;
    }
  }
  if (exec_reached) *exec_reached = 1;
  if (write(report, why, sizeof why) < 0) _exit(127);
  _exit(127);
}

int (*at_mounts)(void);

/* mkdir -p: `path` and the folders above it that are missing. */
static int make_folders(const char *path) {
  char at[4096];
  size_t length = strlen(path);
  if (length >= sizeof at) return errno = ENAMETOOLONG, -1;
  memcpy(at, path, length + 1);
  for (char *slash = strchr(at + 1, '/');; slash = strchr(slash + 1, '/')) {
    if (slash) *slash = '\0';
    if (mkdir(at, 0700) < 0 && errno != EEXIST) return -1;
    if (!slash) return 0;
    *slash = '/';
  }
}

int move_mounted_folders(const char *const *moves, int move_count) {
  for (int i = 0; i + 1 < move_count; i += 2) {
    const char *from = moves[i], *to = moves[i + 1];
    if (make_folders(to) < 0) return -1;
    struct statvfs shown;
    if (statvfs(from, &shown) < 0) return -1;
    if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    /* A bind is read-write whatever its source: one shown read-only stays so. */
    if ((shown.f_flag & ST_RDONLY) &&
        mount(NULL, to, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      return -1;
    if (umount2(from, MNT_DETACH) < 0) return -1;
    rmdir(from);
  }
  return 0;
}

/*
 * The path of `pid`'s pids cgroup (cgroup v1's `pids` line of /proc/<pid>/cgroup, else v2's
 * `0::` line) into `out`, and where that hierarchy is mounted. Returns 0, or -1.
 */
static int pids_cgroup(const char *file, char *out, size_t size, const char **mount_point) {
  char text[8192];
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return errno = EIO, -1;
  text[n] = '\0';
  const char *v2 = NULL;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char *pids = strstr(line, ":pids:");
    if (pids) {
      *mount_point = "/sys/fs/cgroup/pids";
      return snprintf(out, size, "%s", pids + 6) < (int)size ? 0 : (errno = ENAMETOOLONG, -1);
    }
    if (strncmp(line, "0::", 3) == 0) v2 = line + 3;
  }
  if (!v2) return errno = ENOENT, -1;
  *mount_point = "/sys/fs/cgroup";
  return snprintf(out, size, "%s", v2) < (int)size ? 0 : (errno = ENAMETOOLONG, -1);
}

/*
 * Joins the pids cgroup of `holder` where it is not this process's own, as `nsenter --cgroup`
 * would: the runner put a run's sandbox in a cgroup of its own to hold it to `pids.max`
 * (src/exec/run-cgroup.ts), and a command entered into the sandbox must be held with it. Done
 * before the namespaces are joined, while /sys/fs/cgroup is the host's. Returns 0, or -1.
 */
int join_cgroup(pid_t holder) {
  char file[64], theirs[4096], ours[4096], procs[4200];
  const char *their_mount = NULL, *our_mount = NULL;
  snprintf(file, sizeof file, "/proc/%d/cgroup", (int)holder);
  if (pids_cgroup(file, theirs, sizeof theirs, &their_mount) < 0) return -1;
  if (pids_cgroup("/proc/self/cgroup", ours, sizeof ours, &our_mount) < 0) return -1;
  if (strcmp(theirs, ours) == 0) return 0;
  if (snprintf(procs, sizeof procs, "%s%s/cgroup.procs", their_mount, theirs) >= (int)sizeof procs)
    return errno = ENAMETOOLONG, -1;
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int ok = write(fd, "0", 1) == 1;
  int saved = errno;
  close(fd);
  return ok ? 0 : (errno = saved, -1);
}

/*
 * Joins the namespaces of `holder` (the process a run's bubblewrap sandbox keeps alive) that
 * differ from this process's own, as nsenter does: the others first, while this process still
 * has its own capabilities (a root runner's bwrap nests the holder's user namespace inside the
 * one that owns the mounts, so from inside it the mounts could not be joined), then the user
 * namespace, and what could not be joined before it (a runner without capabilities of its own
 * gets them in the sandbox's user namespace only). Every capability is then dropped, for good
 * (bounding set, ambient set, no_new_privs), as bubblewrap drops them for the commands it
 * starts, and the step filter is loaded (step-filter.c): what runs next is the run's untrusted
 * code. Returns 0, or -1 with errno set.
 */
int enter_sandbox(pid_t holder, const uint64_t *expected) {
  static const char *kinds[] = {"user", "mnt", "ipc", "net", "uts", "pid"};
  static const int flags[] = {CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWUTS, CLONE_NEWPID};
  int fds[6];
  for (int i = 0; i < 6; i++) {
    char theirs[64], ours[64];
    snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)holder, kinds[i]);
    snprintf(ours, sizeof ours, "/proc/self/ns/%s", kinds[i]);
    struct stat a, b;
    fds[i] = -1;
    if (stat(theirs, &a) < 0) return -1;
    if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
      if ((uint64_t)a.st_ino != expected[i]) return errno = ESRCH, -1;
      continue;
    }
    fds[i] = open(theirs, O_RDONLY | O_CLOEXEC);
    /* The open descriptor holds its namespace: judged by it, a pid reused meanwhile is seen. */
    if (fds[i] < 0 || fstat(fds[i], &a) < 0) return -1;
    if ((uint64_t)a.st_ino != expected[i]) return errno = ESRCH, -1;
  }
  /* A sandbox always has a user namespace of its own: never enter one that has none. */
  if (fds[0] < 0) return errno = EPERM, -1;
  /*
   * The user namespaces to join, outermost first: bwrap --disable-userns nests the holder's one
   * level inside the namespace that owns the mounts, so a runner without capabilities of its own
   * joins that parent, then the mounts, then the holder's.
   */
  int users[2] = {-1, fds[0]};
  int parent = ioctl(fds[0], NS_GET_PARENT);
  if (parent >= 0) {
    struct stat theirs, ours;
    if (fstat(parent, &theirs) == 0 && stat("/proc/self/ns/user", &ours) == 0 && theirs.st_ino != ours.st_ino)
      users[0] = parent;
    else
      close(parent);
  }
  for (int round = 0; round < 3; round++) {
    for (int i = 1; i < 6; i++) {
      if (fds[i] < 0 || setns(fds[i], flags[i]) < 0) continue;
      close(fds[i]);
      fds[i] = -1;
      /*
       * A door stops here: it moves a pooled sandbox's folders with the rights that joined the
       * mounts, a root runner's own, over the user namespace that owns them (the holder's is
       * nested inside it), or the sandbox's.
       */
      if (flags[i] == CLONE_NEWNS && at_mounts && at_mounts() < 0) return -1;
    }
    if (round == 2) break;
    if (users[round] >= 0 && setns(users[round], CLONE_NEWUSER) < 0) return -1;
  }
  for (int i = 1; i < 6; i++)
    if (fds[i] >= 0) return errno = EPERM, -1;
  if (chdir("/") < 0 || drop_capabilities() < 0) return -1;
  return step_filter();
}

int drop_capabilities(void) {
  for (int cap = 0; cap <= 63; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL) break;
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &header, data) < 0) return -1;
  return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}


