/*
 * How runyard's fork-server enters a run's sandbox (see fork-server.c, ops 'E', 'M', 'O', 'D'):
 * the pids cgroup and namespaces of the process a run's bubblewrap sandbox keeps alive, joined
 * with every capability dropped; and the doors, one process per run's sandbox already inside
 * it, from which that run's commands are forked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fork-server.h"
#include "step-filter.h"

sigset_t original_mask;

/*
 * A child of this helper, before it runs anything of a step's: no one but this helper may look
 * into it, and it keeps no descriptor of the helper's but `keep` (and 0 to 2). Until its exec it
 * is a copy of the helper: the runner's environment (its operator's keys) and memory (other
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

void exec_command(const char *cwd, char **argv, char **envp, int32_t why[2]) {
  if (*cwd && chdir(cwd) < 0) {
    why[0] = errno, why[1] = 1;
    return;
  }
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_SETMASK, &original_mask, NULL);
  environ = envp;
  execvp(argv[0], argv);
  why[0] = errno, why[1] = 2;
}

/* Zeroes what the fork-server keeps of requests and output, in a door (set by door_forgets). */
static void (*forget_requests)(void);

void door_forgets(void (*forget)(void)) {
  forget_requests = forget;
}

/* What 'M' moves: pairs of paths, from then to, done once the sandbox's mounts are joined. */
const char *const *moves;
int move_count;

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

static int move_mounted_folders(void) {
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
       * A move mounts with the rights that joined the mounts: a root runner's own, over the user
       * namespace that owns them (the holder's is nested inside it), or the sandbox's.
       */
      if (flags[i] == CLONE_NEWNS && moves) return move_mounted_folders();
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


/*
 * A door: a process that has joined a run's sandbox once (its pids cgroup, its namespaces, every
 * capability dropped) and forks that run's commands from there, so they are born inside, in the
 * run's cgroup and pid namespace: a command costs a fork, not a cgroup move and six setns (the
 * move alone waits for an RCU grace period on cgroup v1). Its children are this helper's
 * (CLONE_PARENT), reaped and counted here as any step. It stays in the host's pid namespace,
 * where the run's commands cannot see it, is not dumpable, and holds nothing of the helper's but
 * its socket: it ends with the sandbox's holder (a pidfd), with this helper (its death signal),
 * or when the runner closes the sandbox ('D'), before the run's cgroup is removed.
 */
struct door {
  int used;
  pid_t holder;
  uint64_t namespaces[6];
  pid_t pid;
  int sock; /* requests out, each answered by the command's pid */
};

#define MAX_DOORS 512
static struct door doors[MAX_DOORS];

static struct door *find_door(pid_t holder, const uint64_t *expected) {
  for (int i = 0; i < MAX_DOORS; i++)
    if (doors[i].used && doors[i].holder == holder && memcmp(doors[i].namespaces, expected, sizeof doors[i].namespaces) == 0)
      return &doors[i];
  return NULL;
}

static void end_door(struct door *d) {
  close(d->sock);
  kill(d->pid, SIGKILL); /* not yet reaped (door_reaped forgets it), so still this helper's child */
  waitpid(d->pid, NULL, 0);
  d->used = 0;
}

void door_close(pid_t holder) {
  for (int i = 0; i < MAX_DOORS; i++)
    if (doors[i].used && doors[i].holder == holder) end_door(&doors[i]);
}

int door_reaped(pid_t pid) {
  for (int i = 0; i < MAX_DOORS; i++) {
    if (!doors[i].used || doors[i].pid != pid) continue;
    close(doors[i].sock);
    doors[i].used = 0;
    return 1;
  }
  return 0;
}

static int read_full(int fd, void *data, size_t length) {
  for (size_t at = 0; at < length;) {
    ssize_t n = read(fd, (char *)data + at, length - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    at += (size_t)n;
  }
  return 0;
}

/* In the door: forks one command of an 'S' body, its output on `out` and `err`. */
static pid_t door_fork(const char *body, uint32_t length, int null, int out, int err, int report) {
  if (length < 8) return errno = EINVAL, -1;
  const char *cwd;
  char **argv, **envp;
  if (parse_command(body, length, &cwd, &argv, &envp) < 0) return -1;
  if (!argv[0]) return free(argv), free(envp), errno = EINVAL, -1;
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    int32_t why[2] = {0, 0};
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (setsid() < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
      why[0] = errno;
    } else {
      seal_child(report);
      exec_command(cwd, argv, envp, why);
    }
    if (write(report, why, sizeof why) < 0) _exit(127);
    _exit(127);
  }
  free(argv);
  free(envp);
  return pid;
}

/* The door's life: a request (u32 length, the 'S' body, and three descriptors), a pid back. */
static void door_serve(int sock, int holder_fd, int null) {
  char *body = NULL;
  for (;;) {
    struct pollfd ends[2] = {{.fd = sock, .events = POLLIN}, {.fd = holder_fd, .events = POLLIN}};
    if (poll(ends, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (ends[1].revents) _exit(0); /* the sandbox's holder has ended */
    if (!ends[0].revents) continue;
    uint32_t length;
    union {
      struct cmsghdr header;
      char space[CMSG_SPACE(3 * sizeof(int))];
    } control;
    struct iovec iov = {&length, sizeof length};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(sock, &message, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    struct cmsghdr *fds = CMSG_FIRSTHDR(&message);
    if (n != (ssize_t)sizeof length || !fds || fds->cmsg_type != SCM_RIGHTS ||
        fds->cmsg_len != CMSG_LEN(3 * sizeof(int)))
      _exit(n == 0 ? 0 : 1);
    int wires[3];
    memcpy(wires, CMSG_DATA(fds), sizeof wires);
    free(body);
    body = length <= (1u << 30) ? malloc(length ? length : 1) : NULL;
    if (!body || read_full(sock, body, length) < 0) _exit(1);
    int32_t answer[2] = {0, 0};
    pid_t pid = door_fork(body, length, null, wires[0], wires[1], wires[2]);
    if (pid < 0) answer[0] = errno;
    else answer[1] = pid;
    for (int i = 0; i < 3; i++) close(wires[i]);
    if (write(sock, answer, sizeof answer) != (ssize_t)sizeof answer) _exit(1);
  }
}

/* Closes every descriptor from 3 up but the `count` in `keep`. */
static void close_all_but(int *keep, int count) {
  for (int i = 1; i < count; i++)
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
      int t = keep[j];
      keep[j] = keep[j - 1], keep[j - 1] = t;
    }
  unsigned from = 3;
  for (int i = 0; i <= count; i++) {
    unsigned to = i < count ? (unsigned)keep[i] : ~0U;
    if (to > from && syscall(SYS_close_range, from, to - 1, 0) < 0)
      for (unsigned fd = from; fd < to && fd < 65536; fd++) close((int)fd);
    if (i < count) from = (unsigned)keep[i] + 1;
  }
}

int door_open(pid_t holder, const uint64_t *expected) {
  if (find_door(holder, expected)) return 0;
  door_close(holder); /* a door of an earlier sandbox whose holder's pid was reused */
  struct door *d = NULL;
  for (int i = 0; i < MAX_DOORS && !d; i++)
    if (!doors[i].used) d = &doors[i];
  if (!d) return errno = EAGAIN, -1;
  /* Kernels before 5.3 have no pidfd: there the door lasts until 'D' or this helper's end. */
  int holder_fd = (int)syscall(SYS_pidfd_open, holder, 0);
  if (holder_fd < 0 && errno != ENOSYS) return -1;
  int pair[2] = {-1, -1}, report[2] = {-1, -1};
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = -1;
  if (null >= 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0 && pipe2(report, O_CLOEXEC) == 0)
    pid = fork();
  if (pid == 0) {
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    setsid();
    if (forget_requests) forget_requests();
    int keep[4] = {pair[1], report[1], null, holder_fd};
    close_all_but(keep, holder_fd < 0 ? 3 : 4);
    int32_t why = join_cgroup(holder) < 0 || enter_sandbox(holder, expected) < 0 ? errno : 0;
    if (write(report[1], &why, sizeof why) < 0 || why) _exit(0);
    close(report[1]);
    door_serve(pair[1], holder_fd, null);
  }
  int32_t why = pid < 0 ? errno : 0;
  if (holder_fd >= 0) close(holder_fd);
  if (null >= 0) close(null);
  if (pair[1] >= 0) close(pair[1]);
  if (report[1] >= 0) close(report[1]);
  if (pid > 0 && read_full(report[0], &why, sizeof why) < 0) why = ESRCH; /* it died first */
  if (report[0] >= 0) close(report[0]);
  if (why) {
    if (pair[0] >= 0) close(pair[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
    return errno = why, -1;
  }
  *d = (struct door){.used = 1, .holder = holder, .pid = pid, .sock = pair[0]};
  memcpy(d->namespaces, expected, sizeof d->namespaces);
  return 0;
}

/* Sends one command to `d`; its pid, or -1 (errno EPIPE where the door has gone). */
static pid_t door_send(struct door *d, const char *body, uint32_t length, int out, int err, int report) {
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(3 * sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov[2] = {{&length, sizeof length}, {(void *)body, length}};
  struct msghdr message = {.msg_iov = iov, .msg_iovlen = 2, .msg_control = &control, .msg_controllen = sizeof control};
  struct cmsghdr *fds = CMSG_FIRSTHDR(&message);
  fds->cmsg_level = SOL_SOCKET;
  fds->cmsg_type = SCM_RIGHTS;
  fds->cmsg_len = CMSG_LEN(3 * sizeof(int));
  int wires[3] = {out, err, report};
  memcpy(CMSG_DATA(fds), wires, sizeof wires);
  size_t total = sizeof length + length, sent = 0;
  ssize_t n;
  do n = sendmsg(d->sock, &message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno = EPIPE, -1;
  for (sent = (size_t)n; sent < total; sent += (size_t)n) {
    const char *from = sent < sizeof length ? (const char *)&length + sent : body + (sent - sizeof length);
    size_t left = sent < sizeof length ? sizeof length - sent : total - sent;
    do n = send(d->sock, from, left, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return errno = EPIPE, -1;
  }
  int32_t answer[2];
  if (read_full(d->sock, answer, sizeof answer) < 0) return errno = EPIPE, -1;
  if (answer[0]) return errno = answer[0], -1;
  return (pid_t)answer[1];
}

pid_t door_start(pid_t holder, const uint64_t *expected, const char *body, uint32_t length, int out, int err,
                 int report) {
  /* A door that has gone (its sandbox's holder ended, or it was killed) is opened once more. */
  for (int attempt = 0; attempt < 2; attempt++) {
    if (door_open(holder, expected) < 0) return -1;
    struct door *d = find_door(holder, expected);
    pid_t pid = door_send(d, body, length, out, err, report);
    if (pid >= 0 || errno != EPIPE) return pid;
    end_door(d);
  }
  return errno = ESRCH, -1;
}
