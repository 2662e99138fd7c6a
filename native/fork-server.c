/*
 * runyard's fork-server: starts step processes for a Node runner, so that Node never forks
 * itself. fork() copies the page tables of the calling process: ~2.6 ms for a large Node
 * process, ~0.1 ms for this one. See docs/runners.md ("How steps are started") and
 * src/exec/fork-server.ts, which speaks its protocol.
 *
 * Requests arrive on stdin, each `u32 length` then the body (little-endian, host order):
 *   u32 slot, u8 op, ...
 *   op 'S' (start): u32 argc, u32 envc, then cwd, argv..., env... as NUL-terminated strings
 *                   (an empty cwd means the helper's own).
 *   op 'C' (close): stop relaying the slot's output pipes (a process that left the group
 *                   still holds them) and finish the slot.
 *   op 'P' (pipe):  the runner has opened the event pipe for reading (see 'p'): the events that
 *                   follow go there.
 *   op 'E' (enter): u32 pid, u64 inode of each of its namespaces (user, mnt, ipc, net, uts,
 *                   pid), then as 'S': the command starts inside the namespaces and the pids
 *                   cgroup of process `pid` (a run's sandbox, made once by bubblewrap), with every
 *                   capability dropped, forked by the sandbox's door (sandbox-entry.c), opened at
 *                   the first 'E' or 'O'; its pid, reported in 's', is the host's. The inodes are
 *                   the namespaces the runner saw when it made the sandbox: should `pid` have
 *                   ended and its number gone to another process, nothing is entered.
 *   op 'O' (open):  as 'E' up to the strings: opens the sandbox's door ahead of its first
 *                   command. Answered by 'm' (i32 errno, 0 when open).
 *   op 'D' (done):  as 'O': ends the sandbox's door (before the runner removes its cgroup).
 *                   Answered by 'm' (0).
 *   op 'K' (clone): as 'E' up to the strings, for the *template* sandbox (the pid and namespaces
 *                   of a sandbox bwrap made with no run's folders), then as 'S', where cwd is the
 *                   run's pids cgroup's cgroup.procs (empty: none) and argv the clone's steps,
 *                   each a kind letter and a path ('B'/'R' host folder then the path it is shown
 *                   at, 'L' link target then path, 'T' a template folder, 'D' /dev, 'P' /proc,
 *                   'C' a read-only cover in it, 'N' and 'M' a fresh tmpfs, 'H' the holder
 *                   program): makes a run's sandbox as a clone of the template
 *                   (sandbox-clone.c), whose holder is this command: 's' once it runs (the
 *                   sandbox is ready), 'x' and 'd' when it ends.
 *   op 'M' (move):  as 'E' up to the strings, then pairs `from`, `to` (at most 8): inside that
 *                   sandbox, binds each folder `from` at `to` (made if missing) and unmounts
 *                   `from`: how the runner gives a sandbox it made ahead of time (no command has
 *                   run in it yet) the folders of the run it goes to. Answered by 'm' (i32 errno,
 *                   0 when done).
 * Events leave on stdout, each a 12-byte header `u32 slot, u8 type, 3 pad, u32 length` and
 * `length` bytes:
 *   'r'        ready (slot 0, first event): events stay on stdout
 *   'p'        ready (slot 0, first event), and the helper made a FIFO at argv[2], the event
 *              pipe: once the runner has opened it and sent 'P', every event goes there instead
 *              (a pipe of 1 MiB, which the runner reads into one buffer of its own; its stdout
 *              is a socket it reads 64 KiB at a time, into a new buffer each time)
 *   'q'        the event pipe could not be opened on 'P': events stay on stdout
 *   'o' / 'e'  stdout / stderr bytes of the step
 *   's'        started: i32 pid (also the process group id: each step is a session leader)
 *   'f'        could not start: i32 errno, then the failing call's name
 *   'x'        the leader exited: i32 wait status
 *   'm'        the answer to 'M': i32 errno, 0 when the folder was moved
 *   'd'        done (leader reaped, both pipes at their end, group empty): i32 wait status, i64 CPU
 *              microseconds (user + system), i64 peak RSS in KiB, from wait4 of the leader
 *              and of every orphan of its group reaped here before.
 *
 * The helper is a child subreaper, so orphans of a step (`sleep 100 &` after the leader
 * exits) become its children: it reaps them (no zombies) and counts their usage. When its
 * runner is gone (SIGKILL included: its stdin ends, and its parent-death signal, SIGUSR1,
 * arrives), it stops every group it started: SIGTERM, then SIGKILL after the grace given as
 * argv[1] (ms). The steps get no death signal of their own: one on the leader would kill it
 * alone, leaving the rest of its group and taking away the leader the runner's journal
 * (orphan-guard.ts) recognises the group by; should the helper die alone, the runner stops
 * the groups itself.
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
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fork-server.h"

#define MAX_SLOTS 1024
#define CHUNK (1024 * 1024)
/*
 * A step that streams (its output comes less than this long after its last relay) has its
 * next output relayed this long after the last, not as it is written: a step that prints a lot
 * writes 4 KiB at a time, and relaying each write would wake this helper and the runner, and
 * make an event, for every 4 KiB. Output after a quiet spell is relayed at once. A step's
 * stdout pipe holds 1 MiB: a step writing under 1 GB/s never waits for the relay.
 */
#define STREAMING_NS 1000000L
/* Relayed at once, streaming or not: this much waiting in the pipe is a full relay already. */
#define RELAY_NOW_BYTES (256 * 1024)
/* A pipe smaller than this (its size could not be raised) is relayed as it is written. */
#define WAIT_PIPE_BYTES (512 * 1024)

struct slot {
  int used;
  uint32_t id;
  pid_t pid;
  int fd[2]; /* stdout, stderr read ends; -1 once at their end */
  int64_t relayed_at[2]; /* when each stream's output was last relayed (monotonic ns) */
  int64_t wait_until[2]; /* a streaming stream's next relay; 0 when it is not waiting */
  int waits[2];          /* whether the stream's pipe is large enough to wait for its relay */
  int reaped;
  int status;
  int64_t cpu_us;
  int64_t maxrss_kb;
};

static struct slot slots[MAX_SLOTS];
static char chunk[CHUNK];
static int sigfd;
static int spliced;
/* Where events go: stdout, or the event pipe once the runner has opened it. */
static int out_fd = 1;
/* The event pipe's path (argv[2]) while it waits for the runner's 'P'. */
static char *pipe_path;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000L + t.tv_nsec;
}

/* The grace a step gets between SIGTERM and SIGKILL when the helper stops it (argv[1], ms). */
static long grace_ms = 5000;

static void stop_all_groups(long grace) {
  int any = 0;
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && kill(-slots[i].pid, SIGTERM) == 0) any = 1;
  if (!any) return;
  struct timespec wait = {grace / 1000, (grace % 1000) * 1000000L};
  nanosleep(&wait, NULL);
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used) kill(-slots[i].pid, SIGKILL);
}

/*
 * The helper cannot go on: no step may outlive it. A runner that dies closes its files before
 * the kernel sends its children their death signal, so the helper often learns of that death
 * here, by a write to the runner failing, not by SIGUSR1.
 */
static void quit(int code) {
  stop_all_groups(grace_ms);
  exit(code);
}

static void die(const char *what) {
  fprintf(stderr, "runyard fork-server: %s: %s\n", what, strerror(errno));
  quit(70);
}

static void write_all(const struct iovec *iov, int count) {
  struct iovec v[4];
  memcpy(v, iov, sizeof(struct iovec) * (size_t)count);
  int at = 0;
  while (at < count) {
    ssize_t n = writev(out_fd, v + at, count - at);
    if (n < 0) {
      if (errno == EINTR) continue;
      quit(0); /* the runner is gone */
    }
    while (at < count && (size_t)n >= v[at].iov_len) n -= (ssize_t)v[at++].iov_len;
    if (at < count) {
      v[at].iov_base = (char *)v[at].iov_base + n;
      v[at].iov_len -= (size_t)n;
    }
  }
}

static void send_event(uint32_t slot, char type, const void *data, uint32_t length) {
  unsigned char header[12] = {0};
  memcpy(header, &slot, 4);
  header[4] = (unsigned char)type;
  memcpy(header + 8, &length, 4);
  struct iovec iov[2] = {{header, 12}, {(void *)data, length}};
  write_all(iov, length ? 2 : 1);
}

static void send_header(uint32_t slot, char type, uint32_t length) {
  unsigned char header[12] = {0};
  memcpy(header, &slot, 4);
  header[4] = (unsigned char)type;
  memcpy(header + 8, &length, 4);
  struct iovec iov[1] = {{header, 12}};
  write_all(iov, 1);
}

/* Reads exactly `length` bytes the pipe is known to hold and relays them as one event's body. */
static void relay_copied(int fd, uint32_t length) {
  while (length > 0) {
    ssize_t got = read(fd, chunk, length < CHUNK ? length : CHUNK);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) quit(70); /* the bytes FIONREAD counted are gone: the event cannot be finished */
    struct iovec iov[1] = {{chunk, (size_t)got}};
    write_all(iov, 1);
    length -= (uint32_t)got;
  }
}

/*
 * Relays what a step's pipe holds (`available` bytes, FIONREAD's count) as one event, the bytes
 * moved from the pipe to the event pipe (or socket) inside the kernel: no copy through this
 * process. Where the kernel cannot splice there, they are copied, from then on.
 */
static void relay_spliced(uint32_t slot, char type, int fd, int available) {
  if (available > CHUNK) available = CHUNK;
  send_header(slot, type, (uint32_t)available);
  while (available > 0) {
    ssize_t moved = splice(fd, NULL, out_fd, NULL, (size_t)available, SPLICE_F_MOVE);
    if (moved > 0) {
      available -= (int)moved;
    } else if (moved < 0 && errno == EINTR) {
      continue;
    } else if (moved < 0 && (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
      spliced = 0;
      relay_copied(fd, (uint32_t)available);
      return;
    } else {
      quit(0); /* the runner is gone */
    }
  }
}

static struct slot *find_slot(uint32_t id) {
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && slots[i].id == id) return &slots[i];
  return NULL;
}

static struct slot *slot_of_group(pid_t pgid) {
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && slots[i].pid == pgid) return &slots[i];
  return NULL;
}

static void add_usage(struct slot *s, const struct rusage *ru) {
  s->cpu_us += (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec +
               (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
  if (ru->ru_maxrss > s->maxrss_kb) s->maxrss_kb = ru->ru_maxrss;
}

/*
 * A slot is done when its leader is reaped, its pipes are at their end and its group is empty:
 * an orphan of the group may close the pipes a moment before its exit is reported, and its
 * usage must be in. `force` (the runner's close request) skips the last check: the runner saw
 * the group gone but for zombies nobody here can reap.
 */
static void finish_if_done(struct slot *s, int force) {
  if (!s->reaped || s->fd[0] >= 0 || s->fd[1] >= 0) return;
  if (!force && kill(-s->pid, 0) == 0) return;
  unsigned char body[20];
  int32_t status = s->status;
  memcpy(body, &status, 4);
  memcpy(body + 4, &s->cpu_us, 8);
  memcpy(body + 12, &s->maxrss_kb, 8);
  send_event(s->id, 'd', body, sizeof body);
  s->used = 0;
}

static void close_pipe(struct slot *s, int which) {
  if (s->fd[which] < 0) return;
  close(s->fd[which]);
  s->fd[which] = -1;
}

/* Reaps every child that has ended: leaders end their slot's process, orphans add their usage. */
static void reap(void) {
  for (;;) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    pid_t pgid = getpgid(pid); /* still answers for a zombie */
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || door_reaped(pid)) continue;
    struct slot *s = slot_of_group(pid);
    if (s && !s->reaped) {
      s->reaped = 1;
      s->status = status;
      add_usage(s, &ru);
      int32_t st = status;
      send_event(s->id, 'x', &st, 4);
      finish_if_done(s, 0);
    } else if (pgid > 0 && (s = slot_of_group(pgid)) != NULL) {
      add_usage(s, &ru);
      finish_if_done(s, 0);
    }
  }
}

/*
 * Reads a new child's report: why it could not exec (8 bytes into `why`), or nothing (its exec
 * closed the pipe). A command entered into a run's sandbox is born in that sandbox's pid
 * namespace, with the uid of the run's commands, which may signal it before its exec: one
 * stopped there (SIGSTOP), were it waited for, would hold this helper, and every run's commands,
 * for as long as it stayed stopped. A child seen stopped (or stopped and continued) before its
 * exec is killed instead, and fails (stage 3, "stopped"). Returns what read returned.
 */
static ssize_t read_report(pid_t pid, int fd, int32_t *why) {
  for (;;) {
    struct pollfd report = {.fd = fd, .events = POLLIN};
    int ready = poll(&report, 1, 10);
    if (ready < 0 && errno != EINTR) return -1;
    if (ready > 0) {
      ssize_t n;
      do n = read(fd, why, 2 * sizeof *why);
      while (n < 0 && errno == EINTR);
      return n;
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    /* WNOWAIT: a stop, or a continue after one, stays to be seen until the child is reaped. */
    if (waitid(P_PID, (id_t)pid, &info, WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid) {
      kill(pid, SIGKILL);
      why[0] = EINTR, why[1] = 3;
      return (ssize_t)(2 * sizeof *why);
    }
  }
}

static void start(uint32_t id, pid_t holder, const uint64_t *expected, const char *body, uint32_t length, char op) {
  if (length < 8) return;
  const char *cwd;
  char **argv, **envp;
  if (parse_command(body, length, &cwd, &argv, &envp) < 0) return;

  struct slot *s = NULL;
  for (int i = 0; i < MAX_SLOTS && !s; i++)
    if (!slots[i].used) s = &slots[i];
  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  int32_t failure[2] = {0, 0};
  const char *stage = "pipe";
  if (!s || !argv[0]) {
    failure[0] = s ? EINVAL : EAGAIN;
  } else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0) {
    failure[0] = errno;
  }
  pid_t pid = -1;
  if (!failure[0]) {
    /*
     * A larger stdout pipe: fewer, larger chunks for a step that prints a lot. stderr keeps the
     * default size (relayed as it is written): the kernel counts every pipe's size against the
     * user's pipe-user-pages-soft (64 MiB by default), past which each new pipe of that user gets
     * a page or two, so a megabyte per stream of every running step would halve the steps a
     * runner can run before that happens.
     */
    fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
    if (op == 'K') {
      /* A run's sandbox cloned from a template (sandbox-clone.c): the command is its holder. */
      pid = clone_sandbox(holder, expected, body, length, out[1], err[1], report[1]);
      if (pid < 0) failure[0] = errno, stage = "clone";
    } else if (holder > 0) {
      /* Into a run's sandbox: forked by its door, already inside (sandbox-entry.c). */
      pid = door_start(holder, expected, body, length, out[1], err[1], report[1]);
      if (pid < 0) failure[0] = errno, stage = "setns";
    } else {
      pid = fork();
    }
    if (pid == 0) {
      int32_t why[2];
      prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); /* at once: see seal_child */
      setsid();
      int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
      int wired = null >= 0 && dup2(null, 0) >= 0 && dup2(out[1], 1) >= 0 && dup2(err[1], 2) >= 0;
      if (wired) seal_child(report[1]);
      if (!wired) {
        why[0] = errno, why[1] = 0;
      } else {
        exec_command(cwd, argv, envp, why);
      }
      if (write(report[1], why, sizeof why) < 0) _exit(127);
      _exit(127);
    }
    if (pid < 0 && holder <= 0) failure[0] = errno, stage = "fork";
  }
  if (report[1] >= 0) close(report[1]);
  if (out[1] >= 0) close(out[1]);
  if (err[1] >= 0) close(err[1]);
  if (pid > 0) {
    /* exec closes the report pipe; a failing child writes why. */
    ssize_t n = read_report(pid, report[0], failure);
    if (n == (ssize_t)sizeof failure) {
      static const char *stages[] = {"dup2", "chdir", "exec", "stopped", "folders"};
      stage = stages[failure[1] % 5];
      /* Killed first: one stopped between its report and its exit would hold this wait. */
      kill(pid, SIGKILL);
      int status;
      waitpid(pid, &status, 0);
    } else {
      failure[0] = 0;
    }
  }
  if (report[0] >= 0) close(report[0]);
  free(argv);
  free(envp);
  if (failure[0]) {
    if (out[0] >= 0) close(out[0]);
    if (err[0] >= 0) close(err[0]);
    char body_out[64];
    int32_t code = failure[0];
    memcpy(body_out, &code, 4);
    size_t n = strlen(stage);
    memcpy(body_out + 4, stage, n);
    send_event(id, 'f', body_out, (uint32_t)(4 + n));
    return;
  }
  memset(s, 0, sizeof *s);
  s->used = 1;
  s->id = id;
  s->pid = pid;
  s->fd[0] = out[0];
  s->fd[1] = err[0];
  s->waits[0] = fcntl(out[0], F_GETPIPE_SZ) >= WAIT_PIPE_BYTES;
  s->waits[1] = fcntl(err[0], F_GETPIPE_SZ) >= WAIT_PIPE_BYTES;
  int32_t p32 = pid;
  send_event(id, 's', &p32, 4);
}

/* Removes the event pipe's name, and the runner's private folder made for it. */
static void remove_pipe_path(void) {
  if (!pipe_path) return;
  unlink(pipe_path);
  char *slash = strrchr(pipe_path, '/');
  if (slash && slash != pipe_path) {
    *slash = '\0';
    rmdir(pipe_path);
  }
  pipe_path = NULL;
}

/* On the runner's 'P': events go to the event pipe from now on ('q' on stdout when it cannot). */
static void open_event_pipe(void) {
  int fd = open(pipe_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  remove_pipe_path(); /* open (or not), it needs no name */
  if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
    if (fd >= 0) close(fd);
    send_event(0, 'q', NULL, 0);
    return;
  }
  fcntl(fd, F_SETPIPE_SZ, CHUNK);
  out_fd = fd;
  spliced = 1;
}

/* 'M': moves folders inside a sandbox no command has run in yet; answers 'm'. */
static void move_folders(uint32_t id, pid_t holder, const uint64_t *expected, const char *body, uint32_t length) {
  const char *end = body + length;
  const char *paths[16];
  int count = 0;
  int32_t result = 0;
  for (const char *p = body; p < end && count < 16; p += strlen(p) + 1) {
    if (!memchr(p, 0, (size_t)(end - p)) || *p != '/') result = EINVAL;
    else paths[count++] = p;
  }
  if (count == 0 || count % 2 || (count == 16 && body + length > paths[15] + strlen(paths[15]) + 1)) result = EINVAL;
  int report[2];
  if (!result && pipe2(report, O_CLOEXEC) < 0) result = errno;
  if (!result) {
    pid_t pid = fork();
    if (pid == 0) {
      seal_child(report[1]);
      moves = paths, move_count = count;
      int32_t why = enter_sandbox(holder, expected) < 0 ? errno : 0;
      if (write(report[1], &why, sizeof why) < 0) _exit(127);
      _exit(0);
    }
    close(report[1]);
    result = pid < 0 ? errno : EIO;
    ssize_t n;
    do n = pid < 0 ? 0 : read(report[0], &result, sizeof result);
    while (n < 0 && errno == EINTR);
    close(report[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
  }
  send_event(id, 'm', &result, 4);
}

static char *request;
static size_t request_len, request_cap;

static void forget_requests(void) {
  memset(chunk, 0, sizeof chunk);
  if (request) memset(request, 0, request_cap);
}

/* Reads what stdin has; returns 0 once it has ended. */
static int read_requests(void) {
  if (request_cap - request_len < 65536) {
    request_cap = request_cap * 2 + 65536;
    request = realloc(request, request_cap);
    if (!request) die("realloc");
  }
  ssize_t n = read(0, request + request_len, request_cap - request_len);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return 0;
  request_len += (size_t)n;
  size_t at = 0;
  while (request_len - at >= 4) {
    uint32_t length;
    memcpy(&length, request + at, 4);
    if (request_len - at - 4 < length) break;
    const char *body = request + at + 4;
    if (length >= 5) {
      uint32_t id;
      memcpy(&id, body, 4);
      char op = body[4];
      if (op == 'S') {
        start(id, 0, NULL, body + 5, length - 5, 'S');
      } else if ((op == 'E' || op == 'M' || op == 'K') && length >= 9 + 6 * 8) {
        uint32_t holder;
        uint64_t expected[6];
        memcpy(&holder, body + 5, 4);
        memcpy(expected, body + 9, sizeof expected);
        const char *rest = body + 9 + sizeof expected;
        uint32_t rest_length = length - 9 - (uint32_t)sizeof expected;
        if (holder > 0 && (op == 'E' || op == 'K')) start(id, (pid_t)holder, expected, rest, rest_length, op);
        if (holder > 0 && op == 'M') move_folders(id, (pid_t)holder, expected, rest, rest_length);
      } else if ((op == 'O' || op == 'D') && length >= 9 + 6 * 8) {
        uint32_t holder;
        uint64_t expected[6];
        memcpy(&holder, body + 5, 4);
        memcpy(expected, body + 9, sizeof expected);
        int32_t result = 0;
        if (op == 'O' && door_open((pid_t)holder, expected) < 0) result = errno;
        if (op == 'D') door_close((pid_t)holder);
        send_event(id, 'm', &result, 4);
      } else if (op == 'P' && pipe_path) {
        open_event_pipe();
      } else if (op == 'C') {
        struct slot *s = find_slot(id);
        if (s) {
          close_pipe(s, 0);
          close_pipe(s, 1);
          finish_if_done(s, 1);
        }
      }
    }
    at += 4 + length;
  }
  memmove(request, request + at, request_len - at);
  request_len -= at;
  return 1;
}

int main(int argc, char **argv) {
  if (argc > 1) grace_ms = atol(argv[1]);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  fcntl(1, F_SETPIPE_SZ, 1 << 20);
  /*
   * Output is spliced where stdout is a pipe or a socket (from Node: a Unix socket), copied
   * otherwise. A larger socket buffer (where the system allows one) takes a whole relay.
   */
  struct stat out_stat;
  spliced = fstat(1, &out_stat) == 0 && (S_ISFIFO(out_stat.st_mode) || S_ISSOCK(out_stat.st_mode));
  if (spliced && S_ISSOCK(out_stat.st_mode)) {
    int size = CHUNK;
    setsockopt(1, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigaddset(&chld, SIGUSR1);
  sigprocmask(SIG_BLOCK, &chld, &original_mask);
  door_forgets(forget_requests);
  sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) die("signalfd");
  pid_t runner = getppid();
  prctl(PR_SET_PDEATHSIG, SIGUSR1);
  if (getppid() != runner || runner == 1) {
    stop_all_groups(0);
    return 0;
  }
  /* Tells the runner the helper is ready: an event for slot 0 with no body ('p' with a pipe). */
  pipe_path = argc > 2 && argv[2][0] ? argv[2] : NULL;
  if (pipe_path && mkfifo(pipe_path, 0600) < 0) pipe_path = NULL;
  if (pipe_path) atexit(remove_pipe_path); /* a runner gone before it opened the pipe */
  send_event(0, pipe_path ? 'p' : 'r', NULL, 0);

  struct pollfd fds[2 + 2 * MAX_SLOTS];
  struct slot *owner[2 + 2 * MAX_SLOTS];
  int which[2 + 2 * MAX_SLOTS];
  for (;;) {
    int n = 0;
    fds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    /* A stream waiting for its next relay is not polled (its pipe is readable all along). */
    int64_t now = now_ns(), wake = -1;
    for (int i = 0; i < MAX_SLOTS; i++) {
      if (!slots[i].used) continue;
      for (int k = 0; k < 2; k++) {
        if (slots[i].fd[k] < 0) continue;
        if (slots[i].wait_until[k] > now) {
          if (wake < 0 || slots[i].wait_until[k] < wake) wake = slots[i].wait_until[k];
          continue;
        }
        owner[n] = &slots[i];
        which[n] = k;
        fds[n++] = (struct pollfd){.fd = slots[i].fd[k], .events = POLLIN};
      }
    }
    struct timespec timeout = {0, 0};
    if (wake >= 0) timeout.tv_nsec = wake - now; /* under STREAMING_NS, so under a second */
    if (ppoll(fds, (nfds_t)n, wake >= 0 ? &timeout : NULL, NULL) < 0) {
      if (errno == EINTR) continue;
      die("ppoll");
    }
    now = now_ns();
    if (fds[1].revents) {
      struct signalfd_siginfo info;
      int runner_gone = 0;
      while (read(sigfd, &info, sizeof info) > 0)
        if (info.ssi_signo == SIGUSR1) runner_gone = 1;
      reap();
      if (runner_gone) {
        stop_all_groups(grace_ms);
        return 0;
      }
    }
    for (int i = 2; i < n; i++) {
      if (!fds[i].revents) continue;
      struct slot *s = owner[i];
      int k = which[i];
      if (!s->used || s->fd[k] != fds[i].fd) continue;
      int available = 0;
      if (ioctl(fds[i].fd, FIONREAD, &available) < 0) available = 0;
      if (available > 0 && available < RELAY_NOW_BYTES && s->waits[k] && s->wait_until[k] == 0 &&
          now - s->relayed_at[k] < STREAMING_NS) {
        s->wait_until[k] = s->relayed_at[k] + STREAMING_NS;
        continue;
      }
      s->wait_until[k] = 0;
      s->relayed_at[k] = now;
      if (spliced && available > 0) {
        relay_spliced(s->id, k ? 'e' : 'o', fds[i].fd, available);
        continue;
      }
      ssize_t got = read(fds[i].fd, chunk, CHUNK);
      if (got > 0) {
        send_event(s->id, k ? 'e' : 'o', chunk, (uint32_t)got);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_pipe(s, k);
        finish_if_done(s, 0);
      }
    }
    if (fds[0].revents && !read_requests()) {
      stop_all_groups(grace_ms);
      return 0;
    }
  }
}
