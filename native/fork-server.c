/*
 * runyard's fork-server: starts step processes for a Node runner, so that Node never forks
 * itself. fork() copies the page tables of the calling process: ~2.6 ms for a large Node
 * process, ~0.1 ms for this one. See docs/runners.md ("How steps are started") and
 * src/exec/process/fork-server.ts, which speaks its protocol. This file reads the requests and
 * runs the loop; steps.c starts, reaps and ends the commands; step-events.c writes the events.
 *
 * No request waits on a child: a command's start and a sandbox's clone each fork and return,
 * and the child's answer is polled with every step's output. A sandbox being cloned (tens of
 * milliseconds of mounts) holds no other run's command, nor any output.
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
 *                   command. Answered by 'm' (i32 errno, 0 when open). A clone's door is its
 *                   maker, adopted here: the runner sends no 'O', its first 'E' or 'W' opens it.
 *   op 'D' (done):  as 'O': ends the sandbox's door (before the runner removes its cgroup).
 *                   Answered by 'm' (0).
 *   op 'K' (clone): as 'E' up to the strings, for the *template* sandbox (the pid and namespaces
 *                   of a sandbox bwrap made with no run's folders), then as 'S', where cwd is the
 *                   run's pids cgroup's cgroup.procs (empty: none) and argv the clone's steps,
 *                   each a kind letter and a path ('B'/'R' host folder then the path it is shown
 *                   at, 'L' link target then path, 'T' a template folder, 'D' /dev, 'P' /proc,
 *                   'C' a read-only cover in it, 'N' and 'M' a fresh tmpfs, 'H' the holder
 *                   program, run where this helper lacks CAP_SYS_PTRACE): makes a run's
 *                   sandbox as a clone of the template
 *                   (sandbox-clone.c), whose holder is this command: 's' once it runs (the
 *                   sandbox is ready), 'x' and 'd' when it ends.
 *   op 'W' (enter, moved): as 'E' up to the strings, then u32 n and n bytes of pairs `from`,
 *                   `to` (NUL-terminated, at most 8), then as 'S': the first command of a
 *                   sandbox made ahead of its run (no command has run in it yet). Inside it, its
 *                   door binds each folder `from` at `to` (made if missing) and unmounts `from`,
 *                   then starts the command: how the runner gives a pooled sandbox the folders of
 *                   the run it goes to. 'f' with stage "move" when either fails: the command did
 *                   not start, and the sandbox is not to be used.
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
 *   'm'        the answer to 'O' and 'D': i32 errno
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
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "fork-server.h"
#include "steps.h"

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
static int sigfd;
char *helper_args;
size_t helper_args_size;
/* The event pipe's path (argv[2]) while it waits for the runner's 'P'. */
static char *pipe_path;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000L + t.tv_nsec;
}

/* The grace a step gets between SIGTERM and SIGKILL when the helper stops it (argv[1], ms). */
static long grace_ms = 5000;

/*
 * The helper cannot go on: no step may outlive it. A runner that dies closes its files before
 * the kernel sends its children their death signal, so the helper often learns of that death
 * here, by a write to the runner failing, not by SIGUSR1.
 */
void quit(int code) {
  stop_all_groups(grace_ms);
  exit(code);
}

static void die(const char *what) {
  fprintf(stderr, "runyard fork-server: %s: %s\n", what, strerror(errno));
  quit(70);
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

static char *request;
static size_t request_len, request_cap;

/*
 * Zeroes `size` bytes at `from`: its whole pages dropped (read back as zeros, none touched: a door
 * forked from this helper would otherwise fault in and write each page of a megabyte and more,
 * most of the CPU its opening cost), the bytes before and after them written.
 */
static void forget_range(char *from, size_t size) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), at = (uintptr_t)from;
  uintptr_t first = (at + page - 1) & ~(page - 1), last = (at + size) & ~(page - 1);
  if (last <= first || madvise((void *)first, last - first, MADV_DONTNEED) < 0) {
    memset(from, 0, size);
    return;
  }
  memset(from, 0, first - at);
  memset((void *)last, 0, at + size - last);
}

/* The helper's own environment as it started (the runner's, its tokens included): its strings' span. */
static char *start_env;
static size_t start_env_size;

/*
 * Zeroes what a door or a clone's holder must not keep of the helper: the requests (other runs'
 * argv and env) and output it held, and its own environment, which no command reads (each gets
 * its request's).
 */
static void forget_requests(void) {
  forget_range(chunk, CHUNK);
  if (request) forget_range(request, request_cap);
  if (start_env) memset(start_env, 0, start_env_size);
  clearenv();
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
      } else if ((op == 'E' || op == 'W' || op == 'K') && length >= 9 + 6 * 8) {
        uint32_t holder;
        uint64_t expected[6];
        memcpy(&holder, body + 5, 4);
        memcpy(expected, body + 9, sizeof expected);
        const char *rest = body + 9 + sizeof expected;
        uint32_t rest_length = length - 9 - (uint32_t)sizeof expected;
        if (holder > 0 && (op == 'E' || op == 'W' || op == 'K')) start(id, (pid_t)holder, expected, rest, rest_length, op);
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
  helper_args = argv[0];
  helper_args_size = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
  /* The kernel lays the environment's strings out one after another, after the arguments'. */
  for (char **each = environ; *each; each++) {
    if (!start_env) start_env = *each;
    char *end = *each + strlen(*each) + 1;
    if (*each >= start_env && (size_t)(end - start_env) > start_env_size) start_env_size = (size_t)(end - start_env);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  /*
   * Not dumpable from the start: a command's child shares this memory until its exec
   * (spawn_command) and makes it undumpable there anyway; before, a process of the runner's user
   * could read it (/proc/<pid>/mem) between two such starts.
   */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
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
  /* Which stream of its slot a polled pipe is (0, 1); -1 a start's pipe. */
  int which[2 + 2 * MAX_SLOTS];
  for (;;) {
    int n = 0;
    fds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    /* A stream waiting for its next relay is not polled (its pipe is readable all along). */
    int64_t now = now_ns(), wake = -1;
    for (int i = 0; i < MAX_SLOTS; i++) {
      if (!slots[i].used) continue;
      if (!slots[i].started) {
        /* Starting: its maker's answer (a clone's), then its child's report. */
        owner[n] = &slots[i];
        which[n] = -1;
        fds[n++] = (struct pollfd){.fd = slots[i].found >= 0 ? slots[i].found : slots[i].report, .events = POLLIN};
        continue;
      }
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
      fail_stopped_starts();
      if (runner_gone) {
        stop_all_groups(grace_ms);
        return 0;
      }
    }
    for (int i = 2; i < n; i++) {
      if (!fds[i].revents) continue;
      struct slot *s = owner[i];
      int k = which[i];
      if (k == -1) {
        if (s->used && !s->started && (s->found == fds[i].fd || s->report == fds[i].fd)) settle(s);
        continue;
      }
      if (!s->used || !s->started || s->fd[k] != fds[i].fd) continue;
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
