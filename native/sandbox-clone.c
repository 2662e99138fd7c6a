/*
 * How runyard's fork-server makes a run's sandbox as a clone of a template (fork-server.c, op
 * 'K'; src/exec/sandbox/sandbox-template.ts): the template is a sandbox bwrap made once, with
 * the system folders and no run's; a clone costs a few dozen syscalls, not bwrap's start.
 *
 * C, forked here: joins the run's pids cgroup, copies the run's host folders as detached trees
 * (open_tree), joins the template's outer user namespace (the owner of its mounts) and its mount
 * namespace, unshares mount, pid and IPC namespaces (owned as bwrap's: not locked, its /proc
 * visible), forks C2 as this helper's child (CLONE_PARENT) and exits.
 * C2, pid 1 of the run's pid namespace: a root of its own (a fresh tmpfs, so no mount point or
 * file of one run is seen by another or grows the template), the template's read-only folders
 * cloned into it, a /dev, /proc and /run of its own, pivot_root, the template's tree dropped, the
 * run's folders attached and hidden folders covered in bwrap's order (paths resolved inside the
 * new root), then a user namespace of its own with the template's uid map and no nested one
 * allowed, every capability dropped; it sends C its mount and user namespaces (C, the door, joins
 * them at the run's first command), and holds the sandbox (sandbox-holder.c), reaping. Under a
 * root runner it is not exec'd (an exec cost a sandbox about 2 ms of CPU: 17.5 to 15.5 ms on a
 * paravirtualized 2-core host); otherwise it execs the holder's program ('H', holds_itself()).
 * See docs/security.md ("What the sandbox costs a step") and /work/tmpl-lab/FINDINGS.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fork-server.h"
#include "sandbox-holder.h"
#include "step-filter.h"

#define MAX_STEPS 256
/* `path` formatted, or the calling function's failure (ENAMETOOLONG). */
#define PATH_OR(fail, ...) \
  do { \
    if (snprintf(path, sizeof path, __VA_ARGS__) >= (int)sizeof path) { \
      errno = ENAMETOOLONG; \
      fail; \
    } \
  } while (0)

struct step {
  char kind;
  const char *a, *b;
};

/* The template's uid and gid maps, as its outer user namespace sees them. */
static char uid_map[256], gid_map[256];

static int private_attrs(int fd, uint64_t set, int recursive) {
  struct mount_attr attr = {.attr_set = set, .propagation = MS_PRIVATE};
  return mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr);
}

/* mkdir -p, as bwrap: the folders above a mount point 0700, the point 0755 (a file when `file`). */
static int make_point(const char *path, int file) {
  char at[4096];
  size_t n = strlen(path);
  if (n >= sizeof at) return errno = ENAMETOOLONG, -1;
  memcpy(at, path, n + 1);
  for (char *slash = strchr(at + 1, '/');; slash = strchr(slash + 1, '/')) {
    if (slash) *slash = '\0';
    if (!slash && file) {
      int fd = open(at, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
      if (fd < 0 && errno != EEXIST && errno != ELOOP) return -1;
      if (fd >= 0) close(fd);
      return 0;
    }
    if (mkdir(at, slash ? 0700 : 0755) < 0 && errno != EEXIST) return -1;
    if (!slash) return 0;
    *slash = '/';
  }
}

static int attach(int fd, const char *to) {
  int r = move_mount(fd, "", AT_FDCWD, to, MOVE_MOUNT_F_EMPTY_PATH);
  close(fd);
  return r;
}

/* A new filesystem of `type`, detached; `options` pairs end with NULL (a NULL value: a flag). */
static int fresh(const char *type, const char *const *options, uint64_t flags) {
  int fs = fsopen(type, FSOPEN_CLOEXEC);
  if (fs < 0) return -1;
  int ok = fsconfig(fs, FSCONFIG_SET_STRING, "source", type, 0) == 0;
  for (int i = 0; ok && options && options[i]; i += 2)
    ok = fsconfig(fs, options[i + 1] ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, options[i], options[i + 1], 0) == 0;
  int m = ok && fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0 ? fsmount(fs, FSMOUNT_CLOEXEC, flags) : -1;
  close(fs);
  return m;
}

static int fresh_tmpfs(const char *at) {
  static const char *const mode[] = {"mode", "0755", NULL};
  int m = fresh("tmpfs", mode, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  return m < 0 || make_point(at, 0) < 0 ? -1 : attach(m, at);
}

/* bwrap's --dev: a tmpfs, six device nodes bound from the template's, a devpts of its own, links. */
static int fresh_dev(const char *from, const char *dev) {
  static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
  static const char *links[][2] = {{"/proc/self/fd", "fd"},     {"/proc/self/fd/0", "stdin"},
                                   {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                                   {"/proc/kcore", "core"},      {"pts/ptmx", "ptmx"}};
  static const char *const pts_options[] = {"newinstance", NULL, "ptmxmode", "0666", "mode", "620", NULL};
  char path[4200];
  if (fresh_tmpfs(dev) < 0) return -1;
  for (int i = 0; i < 6; i++) {
    PATH_OR(return -1, "%s/%s", from, nodes[i]);
    int node = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    PATH_OR(return -1, "%s/%s", dev, nodes[i]);
    /*
     * Read-only: the node is the host's own inode (bwrap's --dev binds the host's), whose owner a
     * step of a root runner is by uid, and an owner may chmod or touch it on a writable mount
     * (`chmod 0 /dev/null` would break the host). Reads and writes of a device ignore the flag.
     */
    if (node >= 0 && private_attrs(node, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0) < 0)
      return close(node), -1;
    if (node < 0 || make_point(path, 1) < 0 || attach(node, path) < 0) return -1;
  }
  for (int i = 0; i < 6; i++) {
    PATH_OR(return -1, "%s/%s", dev, links[i][1]);
    if (symlink(links[i][0], path) < 0) return -1;
  }
  PATH_OR(return -1, "%s/shm", dev);
  if (mkdir(path, 0755) < 0) return -1;
  PATH_OR(return -1, "%s/pts", dev);
  int pts = fresh("devpts", pts_options, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
  return pts < 0 || mkdir(path, 0755) < 0 ? -1 : attach(pts, path);
}

/* A proc of the run's pid namespace, with bwrap's read-only covers ('C') and /proc/sys's. */
static int fresh_proc(const char *at, const struct step *steps, int count) {
  int m = fresh("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  if (m < 0 || make_point(at, 0) < 0 || attach(m, at) < 0) return -1;
  char path[4200];
  for (int i = 0; i < count; i++) {
    if (steps[i].kind != 'C') continue;
    PATH_OR(return -1, "%s%s", at, steps[i].a + strlen("/proc"));
    int cover = open_tree(AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (cover < 0) continue; /* not in this kernel's proc */
    if (private_attrs(cover, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, 0) < 0)
      return close(cover), -1;
    if (attach(cover, path) < 0) return -1;
  }
  return 0;
}

static int write_file(int dir, const char *path, const char *text) {
  int fd = openat(dir, path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, text, strlen(text));
  int saved = errno;
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : (errno = n < 0 ? saved : EIO, -1);
}

/*
 * Whether C2 holds the sandbox itself rather than exec the holder's program ('H'): where this
 * helper has CAP_SYS_PTRACE in its user namespace, which owns C2's memory (a root runner). Not
 * dumpable and not exec'd, C2 is then out of reach of everyone else, and within this helper's
 * (and its runner's) reach: they read its namespaces. Without it they could not, and C2 execs.
 */
static int holds_itself(void) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  return syscall(SYS_capget, &header, data) == 0 &&
         (data[CAP_TO_INDEX(CAP_SYS_PTRACE)].effective & CAP_TO_MASK(CAP_SYS_PTRACE)) != 0;
}

/* Its own mount and user namespaces to C, the door, which joins them (sandbox-door.c): 0, or -1. */
static int send_namespaces(int ns) {
  int fds[2] = {open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC), open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC)};
  union {
    struct cmsghdr header;
    char room[CMSG_SPACE(sizeof fds)];
  } control;
  memset(&control, 0, sizeof control);
  char byte = 'n';
  struct iovec io = {.iov_base = &byte, .iov_len = 1};
  struct msghdr message = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.room, .msg_controllen = sizeof control.room};
  struct cmsghdr *rights = CMSG_FIRSTHDR(&message);
  rights->cmsg_level = SOL_SOCKET, rights->cmsg_type = SCM_RIGHTS, rights->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(rights), fds, sizeof fds);
  int sent = fds[0] >= 0 && fds[1] >= 0 && sendmsg(ns, &message, MSG_NOSIGNAL) == 1 ? 0 : -1;
  int saved = errno;
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0) close(fds[i]);
  return sent < 0 ? (errno = saved, -1) : 0;
}

/*
 * A clone's word that a run took it: C2 keeps the read end, its maker (the door) the other, and
 * writes a byte once the run's first command comes (sandbox-holder.c).
 */
static int taken_pipe[2] = {-1, -1};

/*
 * The sandbox made: C2 lets go of every descriptor but its output and its end of `taken_pipe`
 * (closing `report` tells the helper it is ready), forgets what the helper held of other
 * commands, and is shown as the holder a sandbox of bwrap's execs: its name, and its command
 * line in /proc/1/cmdline (the helper's own argv rewritten, the end of that area not a NUL, as
 * setproctitle() leaves it: the kernel then shows up to the first NUL). Never returns.
 */
static void become_holder(void) {
  int keep[1] = {taken_pipe[0]};
  close_all_but(keep, taken_pipe[0] >= 0 ? 1 : 0);
  forget_helper_requests();
  prctl(PR_SET_NAME, "sandbox-holder", 0, 0, 0);
  static const char name[] = "runyard-sandbox-holder";
  if (helper_args && helper_args_size >= sizeof name) {
    memset(helper_args, 0, helper_args_size);
    memcpy(helper_args, name, sizeof name);
    if (helper_args_size > sizeof name) helper_args[helper_args_size - 1] = ' ';
  }
  hold_sandbox_until_taken(taken_pipe[0]);
}

/*
 * C2, pid 1 of the run's pid namespace, in a copy of the template's mounts. Returns on failure,
 * with `*run` set where what failed was attaching the run's own folders (a link a step left in
 * its /tmp or home where a mount point goes): that run's doing, not the kernel refusing clones.
 */
static void build(const struct step *steps, int count, const int *host, int holder, int ns, int *run) {
  /* The new root (bwrap's /newroot), stacked over the copy's /run to be filled. */
  int base = fresh("tmpfs", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
  if (base < 0 || mkdirat(base, "newroot", 0755) < 0) return;
  int root = open_tree(base, "newroot", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  close(base);
  if (root < 0 || attach(root, "/run") < 0) return;
  char path[4200];
  for (int i = 0; i < count; i++) {
    const struct step *s = &steps[i];
    PATH_OR(return, "/run%s", s->kind == 'L' ? s->b : s->a);
    if (s->kind == 'T') {
      int tree = open_tree(AT_FDCWD, s->a, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
      struct stat st;
      if (tree < 0 || fstat(tree, &st) < 0 || make_point(path, !S_ISDIR(st.st_mode)) < 0 || attach(tree, path) < 0)
        return;
    } else if (s->kind == 'L') {
      char *slash = strrchr(path, '/');
      *slash = '\0';
      int made = make_point(path, 0);
      *slash = '/';
      if (made < 0 || symlink(s->a, path) < 0) return;
    } else if ((s->kind == 'D' && fresh_dev(s->a, path) < 0) || (s->kind == 'P' && fresh_proc(path, steps, count) < 0) ||
               (s->kind == 'N' && fresh_tmpfs(path) < 0)) {
      return;
    }
  }
  /* Where the run's own user namespace, made last, is told it may nest none (see below). */
  int sysctl = fresh("proc", NULL, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
  if (sysctl < 0 || chdir("/run") < 0 || syscall(SYS_pivot_root, ".", ".") < 0) return;
  if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) return;
  /* Its stdin the sandbox's /dev/null now, as bwrap's holder's (the host's was only a stand-in). */
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, 0) < 0 || close(null) < 0) return;
  *run = 1;
  for (int i = 0; i < count; i++) {
    const struct step *s = &steps[i];
    struct stat st;
    if (s->kind == 'B' || s->kind == 'R') {
      if (fstat(host[i], &st) < 0 || make_point(s->b, !S_ISDIR(st.st_mode)) < 0 || attach(host[i], s->b) < 0) return;
    } else if (s->kind == 'M' && fresh_tmpfs(s->a) < 0) {
      return;
    }
  }
  *run = 0;
  /*
   * A user namespace of the run's own, as bwrap makes one per sandbox (its own keyrings and
   * counts): a child of the template's outer one, with the template's map (a namespace may map
   * its creator's own uid), and, as bwrap's --disable-userns, none nested in it: its limit set to
   * 0 through the proc mounted above, never attached (this /proc/sys is read-only now, and a
   * limit is set in the namespace of the process that opens it).
   */
  /*
   * Its /proc/self files its user's again, so that it may write its maps (those of a process
   * that is not dumpable are root's); no command of the run can see it yet, and it is not
   * dumpable again before one can.
   */
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  if (unshare(CLONE_NEWUSER) < 0 || write_file(AT_FDCWD, "/proc/self/setgroups", "deny") < 0 ||
      write_file(AT_FDCWD, "/proc/self/uid_map", uid_map) < 0 || write_file(AT_FDCWD, "/proc/self/gid_map", gid_map) < 0)
    return;
  /*
   * Not dumpable: its memory is a copy of the helper's, and with it not dumpable no process of the
   * run (nor any without CAP_SYS_PTRACE in the host's user namespace, which owns that memory) may
   * read or trace it, or open its /proc files of namespaces, descriptors and memory.
   */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (write_file(sysctl, "sys/user/max_user_namespaces", "0") < 0) return;
  close(sysctl);
  if (drop_capabilities() < 0 || step_filter() < 0 || send_namespaces(ns) < 0) return;
  if (holder < 0) become_holder();
  /*
   * A helper without CAP_SYS_PTRACE (a runner that is not root) runs the holder's own program,
   * told which descriptor brings its door's word (sandbox-holder-main.c).
   */
  static char *const argv[] = {"runyard-sandbox-holder", NULL};
  static char taken_env[40];
  char *envp[] = {taken_env, NULL};
  if (taken_pipe[0] >= 0 && fcntl(taken_pipe[0], F_SETFD, 0) == 0)
    snprintf(taken_env, sizeof taken_env, "RUNYARD_HOLDER_TAKEN_FD=%d", taken_pipe[0]);
  else
    envp[0] = NULL;
  syscall(SYS_execveat, holder, "", argv, envp, AT_EMPTY_PATH);
}

/* Reads a /proc file of `pid` into `out`. */
static int read_proc(pid_t pid, const char *name, char *out, size_t size) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, out, size - 1);
  if (fd >= 0) close(fd);
  if (n <= 0) return errno = n == 0 ? EIO : errno, -1;
  out[n] = '\0';
  return 0;
}

/*
 * C: in the host's namespaces; forks C2 into the run's, which sends its namespaces on `ns[1]`
 * (C keeps `ns[0]`). Returns C2's pid, or -1.
 */
static pid_t make(pid_t template, const uint64_t *expected, const char *cgroup, const struct step *steps, int count,
                  int out, int err, const int *ns, int *run) {
  int host[MAX_STEPS], holder = -1;
  /* Asked before any namespace is joined: in the template's user namespace every helper has it. */
  int itself = holds_itself();
  if (*cgroup) {
    int fd = open(cgroup, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) return -1;
    close(fd);
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)template);
  int mnt = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  /* The descriptor holds the namespace: judged by it, a pid reused meanwhile is seen. */
  if (mnt < 0 || fstat(mnt, &st) < 0) return -1;
  if ((uint64_t)st.st_ino != expected[1]) return errno = ESRCH, -1;
  int outer = ioctl(mnt, NS_GET_USERNS);
  if (outer < 0) return -1;
  /*
   * The run's host folders, copied while the host's mounts are in view: from the host's mount
   * namespace as root; a runner without root copies them from a copy of the host's mounts made
   * in the template's outer user namespace, whose owner it is (as bwrap does).
   */
  int joined = 0;
  for (int i = 0; i < count; i++) {
    host[i] = -1;
    if (steps[i].kind != 'B' && steps[i].kind != 'R' && (steps[i].kind != 'H' || itself)) continue;
    /*
     * The holder's program, where C2 is to exec it, as a read-only mount of its file alone: what
     * pid 1 runs, as /proc/1/exe shows it to a step, is then neither writable nor a host path.
     */
    int tree = open_tree(AT_FDCWD, steps[i].a, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (steps[i].kind == 'H' ? 0 : AT_RECURSIVE));
    if (tree < 0 && errno == EPERM && !joined) {
      if (setns(outer, CLONE_NEWUSER) < 0 || unshare(CLONE_NEWNS) < 0) return -1;
      joined = 1;
      i--;
      continue;
    }
    uint64_t flags = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (steps[i].kind != 'B' ? MOUNT_ATTR_RDONLY : 0);
    if (tree < 0 || private_attrs(tree, flags, steps[i].kind != 'H') < 0) return -1;
    if (steps[i].kind == 'H') holder = tree;
    else host[i] = tree;
  }
  if (holder < 0 && !itself) return errno = EINVAL, -1;
  if (!joined && setns(outer, CLONE_NEWUSER) < 0) return -1;
  /* Room in the outer namespace for one user namespace per run beside the template's. */
  if (read_proc(template, "uid_map", uid_map, sizeof uid_map) < 0 ||
      read_proc(template, "gid_map", gid_map, sizeof gid_map) < 0 ||
      write_file(AT_FDCWD, "/proc/sys/user/max_user_namespaces", "65536") < 0)
    return -1;
  if (setns(mnt, CLONE_NEWNS) < 0 || unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC) < 0) return -1;
  /* Its stdin /dev/null, as any command's: never the helper's own, the runner's request channel. */
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0) return -1;
  pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) {
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    setsid();
    close(ns[0]);
    if (taken_pipe[1] >= 0) close(taken_pipe[1]);
    if (dup2(null, 0) >= 0 && dup2(out, 1) >= 0 && dup2(err, 2) >= 0) build(steps, count, host, holder, ns[1], run);
  }
  return pid;
}

pid_t clone_sandbox(pid_t template, const uint64_t *expected, const char *body, uint32_t length, int out, int err,
                    int report, int door, int *found) {
  const char *cgroup;
  char **argv, **envp;
  if (parse_command(body, length, &cgroup, &argv, &envp) < 0) return -1;
  static struct step steps[MAX_STEPS];
  int count = 0;
  for (char **arg = argv; *arg && count < MAX_STEPS; arg++) {
    struct step s = {(*arg)[0], *arg + 1, NULL};
    if (strchr("BRL", s.kind) && arg[1]) s.b = *++arg;
    steps[count++] = s;
  }
  int answer_pipe[2];
  if (pipe2(answer_pipe, O_CLOEXEC) < 0) return free(argv), free(envp), -1;
  pid_t c = fork();
  if (c == 0) {
    /*
     * What a failing C2 writes to `report` (C2 is the command: it closes it once the sandbox is
     * made): stage 4 ("folders") where the run's own folders could not be attached, else 2.
     */
    int32_t why[2] = {0, 2};
    int run = 0;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    int wanted[5] = {out, err, report, answer_pipe[1], door}, keep[5], kept = 0;
    for (int i = 0; i < 5; i++)
      if (wanted[i] >= 3) keep[kept++] = wanted[i];
    close_all_but(keep, kept);
    /* The namespaces' way from C2 to this door. */
    int ns[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ns) < 0) {
      int32_t answer[2] = {0, errno};
      if (write(answer_pipe[1], answer, sizeof answer) < 0) _exit(1);
      _exit(1);
    }
    if (pipe2(taken_pipe, O_CLOEXEC) < 0) {
      int32_t answer[2] = {0, errno};
      if (write(answer_pipe[1], answer, sizeof answer) < 0) _exit(1);
      _exit(1);
    }
    pid_t pid = make(template, expected, cgroup, steps, count, out, err, ns, &run);
    int32_t answer[2] = {pid > 0 ? pid : 0, pid > 0 ? 0 : errno};
    if (pid == 0) { /* C2, whose build failed */
      why[0] = errno ? errno : EIO;
      if (run) why[1] = 4;
      if (write(report, why, sizeof why) < 0) _exit(127);
      _exit(127);
    }
    if (write(answer_pipe[1], answer, sizeof answer) < 0 || pid < 0) _exit(1);
    /* Its holder's closing of `report`, not this maker's end, tells the helper the sandbox is ready. */
    close(answer_pipe[1]);
    close(report);
    close(out);
    close(err);
    close(ns[1]);
    close(taken_pipe[0]);
    door_become(door, pid, ns[0], taken_pipe[1]);
  }
  int saved = errno;
  close(answer_pipe[1]);
  free(argv);
  free(envp);
  if (c < 0) return close(answer_pipe[0]), errno = saved, -1;
  *found = answer_pipe[0];
  return c;
}
