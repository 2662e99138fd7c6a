/*
 * The commands the fork-server starts (fork-server.c has the protocol): each a slot, from its
 * start to its 'd'. A start spawns (or asks a sandbox's door, or begins a clone) and returns, and
 * the main loop polls the child's report with everything else, so a sandbox's clone never holds
 * another's start or output; a plain command's start waits for its exec alone (spawn_command).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "fork-server.h"
#include "steps.h"

/* A pipe smaller than this (its size could not be raised) is relayed as it is written. */
#define WAIT_PIPE_BYTES (512 * 1024)

struct slot slots[MAX_SLOTS];

/* What a spawned command's child runs: run_command, its stdin a pipe nobody writes. */
struct spawned {
  const char *cwd;
  char **argv, **envp;
  int out, err, report;
  /* Set by the child (run_command) as it reaches its exec or its report; read once it is gone. */
  int reached;
};

/* The longest a spawned child may take to reach its exec before it is killed (see below). */
#define SPAWN_EXEC_SECONDS 10
/* The stack a spawned child runs on until its exec; only one at a time (the parent waits). */
#define SPAWN_STACK_BYTES (8 << 20)

static int spawned_child(void *arg) {
  struct spawned *c = arg;
  /*
   * Killed if it has not reached its exec in time (a cwd or program on a filesystem that hangs, a
   * child stopped by a signal): its parent, this helper, waits for that exec. A POSIX timer of its
   * own, which its exec deletes; SIGKILL ends it even stopped. Where none can be made (the user's
   * limit of queued signals reached) it goes on without. One stopped before it armed the timer
   * holds this helper until it is continued or killed: only a process of the runner's own user
   * can stop it, which could as well stop this helper.
   */
  struct sigevent kill_at = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGKILL};
  timer_t timer;
  struct itimerspec after = {.it_value = {SPAWN_EXEC_SECONDS, 0}};
  if (timer_create(CLOCK_MONOTONIC, &kill_at, &timer) == 0) timer_settime(timer, 0, &after, NULL);
  /*
   * Its stdin a pipe nobody writes (read: end of file at once), not the host's /dev/null: a
   * command here may be bwrap, whose pid 1 keeps it, and under a root runner a step is by uid the
   * owner of the host's node (`chmod 0 /proc/1/fd/0`). A sandbox's command gets the sandbox's
   * /dev/null (its door, or cwd-check.c in a sandbox of its own).
   */
  int empty[2] = {-1, -1};
  if (pipe(empty) == 0) close(empty[1]);
  run_command(c->cwd, c->argv, c->envp, empty[0], c->out, c->err, c->report);
}

/*
 * Starts a command's child as posix_spawn does: sharing this helper's memory until its exec
 * (CLONE_VM | CLONE_VFORK), this helper waiting meanwhile, on a stack of its own. A forked child
 * cost a copy of this helper's page tables, a copy of each page either wrote before the exec, and
 * their teardown: on a host where a page fault costs tens of microseconds (a paravirtualized one),
 * about 1.8 ms of CPU a command more than this. The child writes nothing of this helper's but
 * `environ` (run_command sets the step's, which execvp searches PATH with), restored here, and
 * errno; its descriptors, signal handlers, mask and credentials are its own. Only commands in the
 * host's pid namespace start here, where none but the runner's own user could stop one before its
 * exec, and that user could stop this helper anyway; a run's sandbox's commands are forked by its
 * door, which a command of the run could otherwise hold. Without a stack: fork, as before.
 */
static pid_t spawn_command(const char *cwd, char **argv, char **envp, int out, int err, int report,
                           int *killed) {
  static char *stack;
  struct spawned child = {cwd, argv, envp, out, err, report, 0};
  *killed = 0;
  if (!stack) {
    /* Reserved, not committed; its lowest page a guard, so an overflow ends the child alone. */
    char *made = mmap(NULL, SPAWN_STACK_BYTES, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (made != MAP_FAILED && mprotect(made, 4096, PROT_NONE) == 0) stack = made;
    else if (made != MAP_FAILED) munmap(made, SPAWN_STACK_BYTES);
  }
  if (!stack) {
    pid_t pid = fork();
    if (pid == 0) spawned_child(&child);
    return pid;
  }
  char **before = environ;
  exec_reached = &child.reached;
  pid_t pid = clone(spawned_child, stack + SPAWN_STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, &child);
  exec_reached = NULL;
  environ = before;
  /* Back before its exec or its report: it was killed (its timer, or a signal) before either. */
  *killed = pid > 0 && !child.reached;
  return pid;
}

struct slot *find_slot(uint32_t id) {
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && slots[i].started && slots[i].id == id) return &slots[i];
  return NULL;
}

static struct slot *slot_of_group(pid_t pgid) {
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && slots[i].pid == pgid && pgid > 0) return &slots[i];
  return NULL;
}

static void add_usage(struct slot *s, const struct rusage *ru) {
  s->cpu_us += (int64_t)ru->ru_utime.tv_sec * 1000000 + ru->ru_utime.tv_usec +
               (int64_t)ru->ru_stime.tv_sec * 1000000 + ru->ru_stime.tv_usec;
  if (ru->ru_maxrss > s->maxrss_kb) s->maxrss_kb = ru->ru_maxrss;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

void close_pipe(struct slot *s, int which) {
  close_fd(&s->fd[which]);
}

/*
 * A slot is done when its leader is reaped, its pipes are at their end and its group is empty:
 * an orphan of the group may close the pipes a moment before its exit is reported, and its
 * usage must be in. `force` (the runner's close request) skips the last check: the runner saw
 * the group gone but for zombies nobody here can reap.
 */
void finish_if_done(struct slot *s, int force) {
  if (!s->started || !s->reaped || s->fd[0] >= 0 || s->fd[1] >= 0) return;
  if (!force && kill(-s->pid, 0) == 0) return;
  unsigned char body[20];
  int32_t status = s->status;
  memcpy(body, &status, 4);
  memcpy(body + 4, &s->cpu_us, 8);
  memcpy(body + 12, &s->maxrss_kb, 8);
  send_event(s->id, 'd', body, sizeof body);
  s->used = 0;
}

/* The start failed: 'f' with the errno and the failing call's name; the slot is free again. */
static void fail(struct slot *s, int32_t code, const char *stage) {
  close_fd(&s->found);
  close_fd(&s->door);
  close_fd(&s->report);
  close_pipe(s, 0);
  close_pipe(s, 1);
  char body[64];
  memcpy(body, &code, 4);
  size_t n = strlen(stage);
  memcpy(body + 4, stage, n);
  send_event(s->id, 'f', body, (uint32_t)(4 + n));
  s->used = 0;
}

void start(uint32_t id, pid_t holder, const uint64_t *expected, const char *body, uint32_t length, char op) {
  /* 'W': the folders to move first (u32 n, n bytes), handed to the door with the command after them. */
  const char *moved = NULL;
  uint32_t moved_length = 0;
  if (op == 'W') {
    uint32_t n;
    if (length < 4) return;
    memcpy(&n, body, 4);
    if (n > length - 4) return;
    moved = body, moved_length = length;
    body += 4 + n, length -= 4 + n;
  }
  if (length < 8) return;
  const char *cwd;
  char **argv, **envp;
  if (parse_command(body, length, &cwd, &argv, &envp) < 0) return;

  struct slot *s = NULL;
  for (int i = 0; i < MAX_SLOTS && !s; i++)
    if (!slots[i].used) s = &slots[i];
  int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1}, found = -1, door[2] = {-1, -1};
  int32_t failure = 0;
  const char *stage = "pipe";
  if (!s || !argv[0]) {
    failure = s ? EINVAL : EAGAIN;
  } else if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0) {
    failure = errno;
  }
  pid_t pid = -1;
  if (!failure) {
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
      if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, door) < 0) failure = errno, stage = "clone";
      else pid = clone_sandbox(holder, expected, body, length, out[1], err[1], report[1], door[1], &found);
      if (!failure && pid < 0) failure = errno, stage = "clone";
    } else if (holder > 0) {
      /* Into a run's sandbox: forked by its door, already inside (sandbox-entry.c). */
      pid = moved ? door_start(holder, expected, moved, moved_length, 1, out[1], err[1], report[1])
                  : door_start(holder, expected, body, length, 0, out[1], err[1], report[1]);
      if (pid < 0) failure = errno, stage = moved ? "move" : "setns";
    } else {
      int killed;
      pid = spawn_command(cwd, argv, envp, out[1], err[1], report[1], &killed);
      if (pid < 0) failure = errno, stage = "fork";
      else if (killed) failure = EINTR, stage = "unstarted"; /* reaped by reap(), its slot freed */
    }
  }
  free(argv);
  free(envp);
  close_fd(&report[1]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  close_fd(&door[1]);
  if (!s) {
    struct slot none = {.id = id, .found = -1, .door = door[0], .report = -1, .fd = {-1, -1}};
    fail(&none, failure, stage);
    return;
  }
  *s = (struct slot){.used = 1, .id = id, .found = found, .door = door[0], .report = report[0], .fd = {out[0], err[0]}};
  if (failure) {
    fail(s, failure, stage);
    return;
  }
  if (op == 'K') s->maker = pid;
  else s->pid = pid;
}

/* Reads what a pipe has for us, retrying an interrupted read; -1 with EAGAIN when it has nothing. */
static ssize_t read_some(int fd, void *into, size_t size) {
  ssize_t n;
  do n = read(fd, into, size);
  while (n < 0 && errno == EINTR);
  return n;
}

/* A clone's maker has said its holder's pid (or why there is none), or has ended. */
static void settle_found(struct slot *s) {
  int32_t answer[2] = {0, ESRCH};
  ssize_t n = read_some(s->found, answer, sizeof answer);
  close_fd(&s->found);
  if (n != (ssize_t)sizeof answer || answer[0] <= 0) {
    fail(s, answer[1] ? answer[1] : ESRCH, "clone");
    return;
  }
  s->pid = answer[0];
  /* Its maker is the sandbox's door now, ended and reaped as one; without room it ends. */
  if (door_adopt(s->pid, s->maker, s->door) == 0) s->door = -1, s->maker = 0;
  else close_fd(&s->door);
}

/*
 * The child's report is in: why it could not exec (8 bytes), or nothing (its exec closed the
 * pipe). A failed child is killed first unless already reaped: one stopped between its report
 * and its exit would never end. A started one is said ('s'), and its exit if it came already.
 */
static void settle_report(struct slot *s) {
  int32_t why[2] = {0, 0};
  ssize_t n = read_some(s->report, why, sizeof why);
  close_fd(&s->report);
  if (n == (ssize_t)sizeof why) {
    static const char *stages[] = {"dup2", "chdir", "exec", "stopped", "folders"};
    if (!s->reaped) kill(s->pid, SIGKILL);
    fail(s, why[0], stages[why[1] % 5]);
    return;
  }
  s->started = 1;
  s->waits[0] = fcntl(s->fd[0], F_GETPIPE_SZ) >= WAIT_PIPE_BYTES;
  s->waits[1] = fcntl(s->fd[1], F_GETPIPE_SZ) >= WAIT_PIPE_BYTES;
  int32_t p32 = s->pid;
  send_event(s->id, 's', &p32, 4);
  if (s->reaped) {
    int32_t st = s->status;
    send_event(s->id, 'x', &st, 4);
    finish_if_done(s, 0);
  }
}

void settle(struct slot *s) {
  if (s->found >= 0) settle_found(s);
  else if (s->report >= 0) settle_report(s);
}

/*
 * A command entered into a run's sandbox is born in that sandbox's pid namespace, with the uid
 * of the run's commands, which may signal it before its exec. One stopped there (SIGSTOP) would
 * never exec and its start never end: each stop is a SIGCHLD here, after which a start whose
 * child is stopped (or was, and was continued) is failed (stage "stopped") and the child killed.
 */
void fail_stopped_starts(void) {
  for (int i = 0; i < MAX_SLOTS; i++) {
    struct slot *s = &slots[i];
    if (!s->used || s->started || s->pid <= 0 || s->reaped || s->report < 0) continue;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    /* WNOWAIT: a stop, or a continue after one, stays to be seen until the child is reaped. */
    if (waitid(P_PID, (id_t)s->pid, &info, WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) == 0 && info.si_pid == s->pid) {
      kill(s->pid, SIGKILL);
      fail(s, EINTR, "stopped");
    }
  }
}

/* Whether `pid` is a child of this helper's own making, not a command: a clone's maker. */
static int helper_child(pid_t pid) {
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && slots[i].maker == pid) return 1;
  return 0;
}

/*
 * A clone's holder is this helper's child from its birth, before its maker says its pid: one
 * that ends first (its build failed) must be known before it is reaped, so that its slot has
 * its end and its pid is never signalled once free. Its maker says it at once after the fork.
 */
static void await_found(void) {
  for (int i = 0; i < MAX_SLOTS; i++)
    if (slots[i].used && slots[i].found >= 0) settle_found(&slots[i]);
}

/* Reaps every child that has ended: leaders end their slot's process, orphans add their usage. */
void reap(void) {
  for (;;) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    pid_t pgid = getpgid(pid); /* still answers for a zombie */
    if (!slot_of_group(pid) && !slot_of_group(pgid) && !helper_child(pid)) await_found();
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || door_reaped(pid)) continue;
    struct slot *s = slot_of_group(pid);
    if (s && !s->reaped) {
      s->reaped = 1;
      s->status = status;
      add_usage(s, &ru);
      if (!s->started) continue; /* said after its 's' */
      int32_t st = status;
      send_event(s->id, 'x', &st, 4);
      finish_if_done(s, 0);
    } else if (pgid > 0 && (s = slot_of_group(pgid)) != NULL) {
      add_usage(s, &ru);
      finish_if_done(s, 0);
    }
  }
}

void stop_all_groups(long grace) {
  int any = 0;
  await_found();
  for (int i = 0; i < MAX_SLOTS; i++) {
    if (!slots[i].used || slots[i].pid <= 0) continue;
    if (kill(-slots[i].pid, SIGTERM) == 0) any = 1;
    if (!slots[i].started && kill(slots[i].pid, SIGTERM) == 0) any = 1; /* not yet its own group */
  }
  if (!any) return;
  struct timespec wait = {grace / 1000, (grace % 1000) * 1000000L};
  nanosleep(&wait, NULL);
  for (int i = 0; i < MAX_SLOTS; i++) {
    if (!slots[i].used || slots[i].pid <= 0) continue;
    kill(-slots[i].pid, SIGKILL);
    if (!slots[i].started) kill(slots[i].pid, SIGKILL);
  }
}
