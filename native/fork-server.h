/* What fork-server.c, steps.c and the sandbox's files (sandbox-entry.c, sandbox-door.c, sandbox-clone.c) share. */
#ifndef RUNYARD_FORK_SERVER_H
#define RUNYARD_FORK_SERVER_H
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

/* The signal mask the helper started with: a command gets it back before its exec. */
extern sigset_t original_mask;
/* Where the helper's own argv lies (argv[0] up to its last NUL): what /proc/<pid>/cmdline shows. */
extern char *helper_args;
extern size_t helper_args_size;
/* Closes every descriptor but 0 to 2 and `keep`; makes the calling child undumpable. */
void seal_child(int keep);
/* How a door zeroes what the helper keeps of requests and output: it must not hold them. */
void door_forgets(void (*forget)(void));

/* The cwd, argv and env of an 'S' body (argv and env allocated; the strings are the body's). */
int parse_command(const char *body, uint32_t length, const char **cwd, char ***argv, char ***envp);
/*
 * In a command's child, after fork or clone: its own session, stdin `in` (-1: making it failed,
 * errno says why), stdout `out`, stderr `err`, every other descriptor closed but `report`, its cwd,
 * default SIGPIPE and signal mask, then exec. Where a step fails before its program runs, the errno
 * and the stage (0 wiring, 1 cwd, 2 exec) go to `report`. Never returns.
 */
/*
 * Where set (a command's child sharing the helper's memory, spawn_command), run_command sets it
 * to 1 as it reaches its exec or its report: 0 once the child is gone means it was killed before.
 */
extern int *exec_reached;
__attribute__((noreturn)) void run_command(const char *cwd, char **argv, char **envp, int in, int out, int err,
                                           int report);

/*
 * In a sandbox's mount namespace, with the rights that joined it, binds each folder `from` at `to`
 * (`count` paths, pairs of from then to) and unmounts `from`: 0, or -1.
 */
int move_mounted_folders(const char *const *moves, int count);
/* The pairs of paths of a moves body into `paths` (at most 16): their count, or -1 (EINVAL). */
int parse_moves(const char *body, uint32_t length, const char **paths);
/* Called by enter_sandbox once the sandbox's mounts are joined, where set (a door's stop). */
extern int (*at_mounts)(void);
int join_cgroup(pid_t holder);
int enter_sandbox(pid_t holder, const uint64_t *expected);
/* Every capability dropped for good (bounding set, ambient set, capset 0), and no_new_privs. */
int drop_capabilities(void);

/* A run's sandbox's door: opened once ('O', or at its first 'E'), kept until 'D' or its end. */
int door_open(pid_t holder, const uint64_t *expected);
/*
 * Starts the command of an 'S' body (`body`, `length`) from the sandbox's door, with `out`,
 * `err` and `report` as in start(): returns its host pid, or -1 with errno set. `moves_first`:
 * the body is a 'W' one (u32 n, n bytes of pairs of paths, then the 'S' body), the sandbox's first
 * command, started only once those folders are moved.
 */
pid_t door_start(pid_t holder, const uint64_t *expected, const char *body, uint32_t length, int moves_first,
                 int out, int err, int report);
/*
 * A clone's maker, the holder's pid known, is its sandbox's door from now on (door_become, in
 * the maker): `sock` its socket. 0, or -1 (no room: the runner's 'O' opens one as for any sandbox).
 */
int door_adopt(pid_t holder, pid_t pid, int sock);
/*
 * Closes every descriptor from 3 up but the `count` in `keep` (reordered; each >= 3): a system
 * call for each gap between them (close_range), not one for each descriptor the helper holds.
 */
void close_all_but(int *keep, int count);
/*
 * In a clone's maker, once its holder is born: becomes that sandbox's door. Never returns. `ns`:
 * where the holder sends the descriptors of its mount and user namespaces (see sandbox-clone.c);
 * `taken`: where it tells the holder a run's first command came (closed, unwritten, if it dies).
 */
void door_become(int sock, pid_t holder, int ns, int taken);
/* Zeroes what the helper keeps of requests and output, in a child that must not hold them. */
void forget_helper_requests(void);
/* Ends the doors of `holder`'s sandbox and waits for them. */
void door_close(pid_t holder);
/* Whether `pid`, just reaped, was a door (which is then forgotten). */
int door_reaped(pid_t pid);
/*
 * Begins a run's sandbox as a clone of the template sandbox `template` ('K' body after the
 * template's namespaces: `body`, `length`): forks its maker, which says the holder's pid (or
 * i32 0 and an errno) on `*found`, a pipe it opens. The holder, a child of this helper wired to
 * `out` and `err`, writes why it failed to `report`, or closes it once the sandbox is made. The
 * maker then becomes the sandbox's door on `door` (door_become). Returns the maker's pid, or -1.
 */
pid_t clone_sandbox(pid_t template, const uint64_t *expected, const char *body, uint32_t length, int out, int err,
                    int report, int door, int *found);
#endif
