/*
 * What the fork-server's parts share about the commands it starts (fork-server.c reads the
 * runner's requests; steps.c starts, reaps and ends the commands; step-events.c says so).
 */
#ifndef RUNYARD_STEPS_H
#define RUNYARD_STEPS_H
#include <stdint.h>
#include <sys/types.h>

#define MAX_SLOTS 1024
#define CHUNK (1024 * 1024)

/*
 * One command, from its request to its 'd'. A start is not waited for: the slot is polled for
 * its child's report (a clone's first for its holder's pid) with every other, and says 's' when
 * its exec has closed the report ('f' when it failed). Until then its output is not relayed and
 * its end not said, so that a command's events keep their order: 's', 'o'/'e', 'x', 'd'.
 */
struct slot {
  int used;
  int started;  /* 's' said */
  uint32_t id;
  pid_t pid;    /* 0 while a clone's holder is not yet known */
  pid_t maker;  /* a clone's first child (sandbox-clone.c), which says its holder's pid; else 0 */
  int found;    /* while that child's answer is awaited: its pipe, else -1 */
  int door;     /* until then, the socket of the door that child becomes (sandbox-door.c), else -1 */
  int report;   /* while starting: the child's report pipe (its exec closes it), else -1 */
  int fd[2];    /* stdout, stderr read ends; -1 once at their end */
  int64_t relayed_at[2]; /* when each stream's output was last relayed (monotonic ns) */
  int64_t wait_until[2]; /* a streaming stream's next relay; 0 when it is not waiting */
  int waits[2];          /* whether the stream's pipe is large enough to wait for its relay */
  int reaped;
  int status;
  int64_t cpu_us;
  int64_t maxrss_kb;
};

extern struct slot slots[MAX_SLOTS];

/* steps.c */
void start(uint32_t id, pid_t holder, const uint64_t *expected, const char *body, uint32_t length, char op);
/* A starting slot's pipe is readable: carries its start on, or fails it ('f'). */
void settle(struct slot *s);
/* Fails the starts whose child was stopped before its exec (see steps.c). */
void fail_stopped_starts(void);
struct slot *find_slot(uint32_t id);
void close_pipe(struct slot *s, int which);
void finish_if_done(struct slot *s, int force);
void reap(void);
void stop_all_groups(long grace);

/* step-events.c */
extern int out_fd;
extern int spliced;
extern char chunk[CHUNK];
void send_event(uint32_t slot, char type, const void *data, uint32_t length);
void relay_spliced(uint32_t slot, char type, int fd, int available);

/* fork-server.c: the helper cannot go on (the runner is gone): stops every group and exits. */
void quit(int code);
#endif
