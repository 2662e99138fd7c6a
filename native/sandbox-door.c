/*
 * A door: a process that has joined a run's sandbox once (its pids cgroup, its namespaces, every
 * capability dropped) and forks that run's commands from there, so they are born inside, in the
 * run's cgroup and pid namespace: a command costs a fork, not a cgroup move and six setns (the
 * move alone waits for an RCU grace period on cgroup v1). Its children are this helper's
 * (CLONE_PARENT), reaped and counted here as any step. It stays in the host's pid namespace,
 * where the run's commands cannot see it, is not dumpable, and holds nothing of the helper's but
 * its socket: it ends with the sandbox's holder (a pidfd), with this helper (its death signal),
 * or when the runner closes the sandbox ('D'), before the run's cgroup is removed.
 *
 * A door opened ahead of its run's first command (a pooled sandbox's) stops once the sandbox's
 * mounts are joined, with the rights that joined them, and waits there: a sandbox made before
 * its run was known is given the run's folders by its door, in the request of the run's first
 * command ('W'), moved before that command is kept. The command then finishes its entry (the
 * user namespace, every capability dropped, the step filter) before anything of the run's is
 * forked, and no folder is moved after that.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "fork-server.h"
#include "step-filter.h"

struct door {
  int used;
  /* A clone's maker become its door (door_become): its namespaces are not yet the runner's word. */
  int adopted;
  pid_t holder;
  uint64_t namespaces[6];
  pid_t pid;
  int sock; /* requests out, each answered by `struct answer` */
};

/*
 * A command's length with this bit: its folders are moved before it (u32 n, n bytes of moves, the
 * command). The runner's requests stay far below 1 GiB (a step's argv and env are capped well under).
 */
#define MOVES_THEN_COMMAND 0x40000000u

/* What a door answers each request: an errno (0: done) and, for a command, its pid. */
struct answer {
  int32_t error;
  int32_t pid;
};

#define MAX_DOORS 512
static struct door doors[MAX_DOORS];

/* Zeroes what the fork-server keeps of requests and output, in a door (set by door_forgets). */
static void (*forget_requests)(void);

void door_forgets(void (*forget)(void)) {
  forget_requests = forget;
}

void forget_helper_requests(void) {
  if (forget_requests) forget_requests();
}

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
  if (pid == 0) run_command(cwd, argv, envp, null, out, err, report);
  free(argv);
  free(envp);
  return pid;
}

/* The pairs of paths of a moves body into `paths` (at most 16); their count, or -1 (EINVAL). */
int parse_moves(const char *body, uint32_t length, const char **paths) {
  const char *end = body + length;
  int count = 0;
  for (const char *p = body; p < end; p += strlen(p) + 1) {
    if (count == 16 || !memchr(p, 0, (size_t)(end - p)) || *p != '/') return errno = EINVAL, -1;
    paths[count++] = p;
  }
  if (count == 0 || count % 2) return errno = EINVAL, -1;
  return count;
}

/* The door's state: its socket, the holder's pidfd, and its stdin's /dev/null for commands. */
static int door_sock = -1, door_holder = -1, door_null = -1;
/* Until the door has said it is open (at the sandbox's mounts, or once in): the fork-server's pipe. */
static int door_report = -1;
/* The first command, which finished the door's entry: served once it has. */
static char *first_body;
static uint32_t first_length;
static int first_wires[3] = {-1, -1, -1};

/*
 * Waits for the next command: 1 (`*body`, `*length`, its three descriptors in `wires`), 2 when
 * its folders are to be moved first, or exits (the holder has ended, the socket closed, a
 * request without its descriptors).
 */
static int door_receive(char **body, uint32_t *length, int *wires) {
  for (;;) {
    struct pollfd ends[2] = {{.fd = door_sock, .events = POLLIN}, {.fd = door_holder, .events = POLLIN}};
    if (poll(ends, door_holder >= 0 ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (door_holder >= 0 && ends[1].revents) _exit(0); /* the sandbox's holder has ended */
    if (!ends[0].revents) continue;
    union {
      struct cmsghdr header;
      char space[CMSG_SPACE(3 * sizeof(int))];
    } control;
    struct iovec iov = {length, sizeof *length};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof control};
    ssize_t n = recvmsg(door_sock, &message, MSG_CMSG_CLOEXEC | MSG_WAITALL);
    if (n < 0 && errno == EINTR) continue;
    if (n != (ssize_t)sizeof *length) _exit(n == 0 ? 0 : 1);
    struct cmsghdr *fds = CMSG_FIRSTHDR(&message);
    int moves_first = (*length & MOVES_THEN_COMMAND) != 0;
    *length &= ~MOVES_THEN_COMMAND;
    if (!fds || fds->cmsg_type != SCM_RIGHTS || fds->cmsg_len != CMSG_LEN(3 * sizeof(int))) _exit(1);
    memcpy(wires, CMSG_DATA(fds), 3 * sizeof(int));
    free(*body);
    *body = *length <= (1u << 30) ? malloc(*length ? *length : 1) : NULL;
    if (!*body || read_full(door_sock, *body, *length) < 0) _exit(1);
    return moves_first ? 2 : 1;
  }
}

static void door_answer(int32_t error, int32_t pid) {
  struct answer answer = {error, pid};
  if (write(door_sock, &answer, sizeof answer) != (ssize_t)sizeof answer) _exit(1);
}

/*
 * The stdin of the commands, opened once the door is in: the sandbox's /dev/null (also the door's
 * own 0 to 2). Never one the helper opened on the host: that is the host's own inode, whose owner
 * a step of a root runner is by uid (it is the host's root to the kernel), and it could
 * `chmod 0 /proc/self/fd/0`.
 */
static int open_null(void) {
  door_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (door_null < 0) return -1;
  /* Its own 0 to 2 were the helper's (its requests, events and log, on the host): the door needs none. */
  for (int fd = 0; fd < 3; fd++)
    if (dup2(door_null, fd) < 0) return -1;
  return 0;
}

/*
 * A first command's folders ('W': u32 n, then n bytes of moves, then the command), moved; the
 * command is then the body's only content. 0, or the errno (the command is not started).
 */
static int32_t move_before_first(char *body, uint32_t *length) {
  uint32_t n;
  if (*length < 4) return EINVAL;
  memcpy(&n, body, 4);
  if (n > *length - 4) return EINVAL;
  const char *paths[16];
  int count = parse_moves(body + 4, n, paths);
  if (count < 0 || move_mounted_folders(paths, count) < 0) return errno;
  *length -= 4 + n;
  memmove(body, body + 4 + n, *length);
  return 0;
}

/* Waits for the first command, its folders moved first where asked, kept to be served once the door is in. */
static void door_await_first(void) {
  for (;;) {
    char *body = NULL;
    uint32_t length;
    int wires[3];
    int32_t error = door_receive(&body, &length, wires) == 2 ? move_before_first(body, &length) : 0;
    if (!error) {
      first_body = body, first_length = length;
      memcpy(first_wires, wires, sizeof wires);
      return;
    }
    /* Not moved, not started: the runner makes the run another sandbox. */
    for (int i = 0; i < 3; i++) close(wires[i]);
    free(body);
    door_answer(error, 0);
  }
}

/*
 * enter_sandbox's stop at the sandbox's mounts (sandbox-entry.c): the door is open. Its first
 * command (its folders moved first, where asked) returns here to finish the entry.
 */
static int door_at_mounts(void) {
  int32_t open = 0;
  if (write(door_report, &open, sizeof open) != (ssize_t)sizeof open) _exit(0);
  close(door_report);
  door_report = -1;
  door_await_first();
  return 0;
}

/* Forks one command and answers its pid; its descriptors are the command's, not the door's. */
static void door_serve_one(char *body, uint32_t length, int *wires) {
  pid_t pid = door_fork(body, length, door_null, wires[0], wires[1], wires[2]);
  for (int i = 0; i < 3; i++) close(wires[i]);
  door_answer(pid < 0 ? errno : 0, pid < 0 ? 0 : pid);
}

/* The door's life once in: the first command, then each request; folders are moved no more. */
static void door_serve(void) {
  if (first_body) door_serve_one(first_body, first_length, first_wires);
  char *body = first_body;
  for (;;) {
    uint32_t length;
    int wires[3];
    if (door_receive(&body, &length, wires) == 1) {
      door_serve_one(body, length, wires);
      continue;
    }
    /* Folders are moved before the first command only: too late now. */
    for (int i = 0; i < 3; i++) close(wires[i]);
    door_answer(EALREADY, 0);
  }
}

/* See fork-server.h. */
void close_all_but(int *keep, int count) {
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
  for (int i = 0; i < MAX_DOORS; i++) {
    if (!doors[i].used || !doors[i].adopted || doors[i].holder != holder) continue;
    /* The runner read these of the holder once it ran: this helper made both, for each other. */
    doors[i].adopted = 0;
    memcpy(doors[i].namespaces, expected, sizeof doors[i].namespaces);
    return 0;
  }
  door_close(holder); /* a door of an earlier sandbox whose holder's pid was reused */
  struct door *d = NULL;
  for (int i = 0; i < MAX_DOORS && !d; i++)
    if (!doors[i].used) d = &doors[i];
  if (!d) return errno = EAGAIN, -1;
  /* Kernels before 5.3 have no pidfd: there the door lasts until 'D' or this helper's end. */
  int holder_fd = (int)syscall(SYS_pidfd_open, holder, 0);
  if (holder_fd < 0 && errno != ENOSYS) return -1;
  int pair[2] = {-1, -1}, report[2] = {-1, -1};
  pid_t pid = -1;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0 && pipe2(report, O_CLOEXEC) == 0) pid = fork();
  if (pid == 0) {
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    setsid();
    forget_helper_requests();
    int keep[3] = {pair[1], report[1], holder_fd};
    close_all_but(keep, holder_fd < 0 ? 2 : 3);
    door_sock = pair[1], door_holder = holder_fd, door_report = report[1];
    at_mounts = door_at_mounts;
    int32_t why = join_cgroup(holder) < 0 || enter_sandbox(holder, expected) < 0 || open_null() < 0 ? errno : 0;
    at_mounts = NULL;
    /* Not yet said (its mounts were its own already): said now. Said: a failed entry ends it. */
    if (door_report >= 0 && write(door_report, &why, sizeof why) < 0) _exit(0);
    if (why) _exit(0);
    if (door_report >= 0) close(door_report);
    door_serve();
  }
  int32_t why = pid < 0 ? errno : 0;
  if (holder_fd >= 0) close(holder_fd);
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

/* Sends one request to `d` (descriptors: a command's three, or none); its answer, or -1 (EPIPE). */
static int door_ask(struct door *d, uint32_t header, const char *body, uint32_t length, const int *wires,
                    struct answer *answer) {
  union {
    struct cmsghdr header;
    char space[CMSG_SPACE(3 * sizeof(int))];
  } control;
  memset(&control, 0, sizeof control);
  struct iovec iov[2] = {{&header, sizeof header}, {(void *)body, length}};
  struct msghdr message = {.msg_iov = iov, .msg_iovlen = 2};
  if (wires) {
    message.msg_control = &control;
    message.msg_controllen = sizeof control;
    struct cmsghdr *fds = CMSG_FIRSTHDR(&message);
    fds->cmsg_level = SOL_SOCKET;
    fds->cmsg_type = SCM_RIGHTS;
    fds->cmsg_len = CMSG_LEN(3 * sizeof(int));
    memcpy(CMSG_DATA(fds), wires, 3 * sizeof(int));
  }
  size_t total = sizeof header + length, sent = 0;
  ssize_t n;
  do n = sendmsg(d->sock, &message, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) return errno = EPIPE, -1;
  for (sent = (size_t)n; sent < total; sent += (size_t)n) {
    const char *from = sent < sizeof header ? (const char *)&header + sent : body + (sent - sizeof header);
    size_t left = sent < sizeof header ? sizeof header - sent : total - sent;
    do n = send(d->sock, from, left, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n <= 0) return errno = EPIPE, -1;
  }
  if (read_full(d->sock, answer, sizeof *answer) < 0) return errno = EPIPE, -1;
  return 0;
}

pid_t door_start(pid_t holder, const uint64_t *expected, const char *body, uint32_t length, int moves_first,
                 int out, int err, int report) {
  /* A door that has gone (its sandbox's holder ended, or it was killed) is opened once more. */
  for (int attempt = 0; attempt < 2; attempt++) {
    if (door_open(holder, expected) < 0) return -1;
    struct door *d = find_door(holder, expected);
    int wires[3] = {out, err, report};
    struct answer answer;
    if (door_ask(d, length | (moves_first ? MOVES_THEN_COMMAND : 0), body, length, wires, &answer) == 0) {
      if (answer.error) return errno = answer.error, -1;
      return (pid_t)answer.pid;
    }
    end_door(d);
  }
  return errno = ESRCH, -1;
}

int door_adopt(pid_t holder, pid_t pid, int sock) {
  for (int i = 0; i < MAX_DOORS; i++) {
    if (doors[i].used) continue;
    doors[i] = (struct door){.used = 1, .adopted = 1, .holder = holder, .pid = pid, .sock = sock};
    return 0;
  }
  return errno = EAGAIN, -1;
}

/* The holder's mount and user namespaces, as it sends them (sandbox-clone.c): 0, or -1. */
static int receive_namespaces(int ns, int *mnt, int *user) {
  char byte;
  struct iovec io = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr header;
    char room[CMSG_SPACE(2 * sizeof(int))];
  } control;
  struct msghdr message = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = control.room, .msg_controllen = sizeof control.room};
  ssize_t n;
  do n = recvmsg(ns, &message, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  struct cmsghdr *rights = n == 1 ? CMSG_FIRSTHDR(&message) : NULL;
  if (!rights || rights->cmsg_type != SCM_RIGHTS || rights->cmsg_len != CMSG_LEN(2 * sizeof(int))) return -1;
  int fds[2];
  memcpy(fds, CMSG_DATA(rights), sizeof fds);
  *mnt = fds[0], *user = fds[1];
  return 0;
}

void door_become(int sock, pid_t holder, int ns, int taken) {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  setsid();
  forget_helper_requests();
  /* Watched for the holder's end (a kernel without pidfds, before 5.3, ends the door at once). */
  int holder_fd = (int)syscall(SYS_pidfd_open, holder, 0);
  if (holder_fd < 0) _exit(0);
  int keep[4] = {sock, holder_fd, ns, taken};
  close_all_but(keep, taken >= 0 ? 4 : 3);
  door_sock = sock, door_holder = holder_fd;
  /* In the run's mounts already (the holder's pivot moved its root too), with the rights that made them. */
  door_await_first();
  /*
   * A run took the sandbox: its holder lives on now whatever becomes of this door. The write fails
   * only where the holder has ended already, which the door learns from its pidfd as before.
   */
  if (taken >= 0) {
    ssize_t said = write(taken, "t", 1);
    (void)said;
    close(taken);
  }
  /*
   * In: the mounts joined again (its root and cwd the sandbox's own, none of the host's), the
   * run's user namespace, every capability dropped, the step filter, as enter_sandbox's end. By
   * the descriptors the holder sent, not its pidfd or /proc: the holder is not dumpable, and
   * its memory is the helper's, so no process without the host's CAP_SYS_PTRACE may join
   * through it; and /proc is the sandbox's since the pivot.
   */
  int mnt, user;
  if (receive_namespaces(ns, &mnt, &user) < 0 || setns(mnt, CLONE_NEWNS) < 0 || setns(user, CLONE_NEWUSER) < 0 ||
      chdir("/") < 0 || drop_capabilities() < 0 || step_filter() < 0 || open_null() < 0)
    _exit(0);
  close(mnt);
  close(user);
  close(ns);
  door_serve();
}
