/*
 * The system calls a step may not make, whatever sandbox it runs in (a run's sandbox's commands
 * through the door, a command's own sandbox through cwd-check, a clone's holder): each fails
 * EPERM. A step's uid is one the kernel knows outside its namespaces (the runner's, the host's
 * root under a root runner), and some of what that uid may do reaches past the sandbox:
 *
 * - keyrings (add_key, request_key, keyctl), as Docker's default profile refuses them: they are
 *   not namespaced, and their owner by uid may link them into a keyring of its own and read them
 *   (another run's keys, the host root's user keyring);
 * - a setuid or setgid bit (chmod, fchmod, fchmodat, fchmodat2, mknod, mknodat, and open, openat
 *   or creat making a file): the file lies in a host folder, its owner the step's uid outside, so
 *   whoever else runs it there would be that user (root, under a root runner); the sandbox's own
 *   nosuid mounts stop it only inside;
 * - openat2 and io_uring_setup, whose arguments a filter cannot read (openat2's mode is in a
 *   struct; io_uring opens files from a queue): programs fall back to openat and plain calls.
 */
#define _GNU_SOURCE
#include "step-filter.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define SETID_BITS 06000u
#define MAKES_FILE (O_CREAT | (O_TMPFILE & ~O_DIRECTORY))

/* A call refused outright (mode < 0), or when its `mode` argument asks for a setuid/setgid bit (and, where `flags` >= 0, it makes a file). */
struct rule {
  int nr, mode, flags;
};

#define ALWAYS(nr) {nr, -1, -1}

static const struct rule native[] = {
  ALWAYS(__NR_add_key), ALWAYS(__NR_request_key), ALWAYS(__NR_keyctl), ALWAYS(__NR_openat2),
  ALWAYS(__NR_io_uring_setup),
  {__NR_fchmod, 1, -1}, {__NR_fchmodat, 2, -1}, {__NR_mknodat, 2, -1}, {__NR_openat, 3, 2},
#ifdef __NR_fchmodat2
  {__NR_fchmodat2, 2, -1},
#else
  {452, 2, -1},
#endif
#ifdef __NR_chmod
  {__NR_chmod, 1, -1}, {__NR_mknod, 1, -1}, {__NR_open, 2, 1}, {__NR_creat, 1, -1},
#endif
};

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
/* 32-bit calls (int 0x80) have numbers of their own. */
static const struct rule i386[] = {
  ALWAYS(286), ALWAYS(287), ALWAYS(288), ALWAYS(437), ALWAYS(425), {94, 1, -1}, {306, 2, -1},
  {297, 2, -1}, {295, 3, 2}, {452, 2, -1}, {15, 1, -1}, {14, 1, -1}, {5, 2, 1}, {8, 1, -1},
};
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#endif

#define MAX_PROGRAM 256
#define ARG_LOW(i) (offsetof(struct seccomp_data, args) + 8 * (i))

static struct sock_filter program[MAX_PROGRAM];
static unsigned short length;

static void put(struct sock_filter instruction) {
  if (length < MAX_PROGRAM) program[length++] = instruction;
}

/* The instructions `section` puts for these rules. */
static unsigned char section_length(const struct rule *rules, int count, int x32) {
  int n = 2 + x32;
  for (int i = 0; i < count; i++) n += rules[i].mode < 0 ? 2 : rules[i].flags < 0 ? 5 : 7;
  return (unsigned char)n;
}

/* The rules of one architecture: the call's number loaded, each rule's block, then allow. */
static void section(const struct rule *rules, int count, int x32) {
  put((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
  /* x32 calls: the same numbers with bit 30 set. */
  if (x32) put((struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~0x40000000u));
  for (int i = 0; i < count; i++) {
    const struct rule *r = &rules[i];
    unsigned char block = r->mode < 0 ? 1 : r->flags < 0 ? 4 : 6;
    put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)r->nr, 0, block));
    if (r->flags >= 0) {
      put((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(r->flags)));
      put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, MAKES_FILE, 0, 3));
    }
    if (r->mode >= 0) {
      put((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(r->mode)));
      put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, SETID_BITS, 0, 1));
    }
    put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
    if (r->mode >= 0) put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
}

int step_filter(void) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
#ifndef NATIVE_ARCH
  return 0; /* no filter written for this architecture */
#else
  length = 0;
  int count = (int)(sizeof native / sizeof native[0]);
  put((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  /* Native calls, then (x86_64) 32-bit ones; another architecture's are allowed. */
  int x32 = NATIVE_ARCH == AUDIT_ARCH_X86_64;
  put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 0, section_length(native, count, x32)));
  section(native, count, x32);
#if defined(__x86_64__)
  int compat = (int)(sizeof i386 / sizeof i386[0]);
  put((struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, section_length(i386, compat, 0)));
  section(i386, compat, 0);
#endif
  put((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  if (length >= MAX_PROGRAM) return errno = E2BIG, -1;
  struct sock_fprog fprog = {.len = length, .filter = program};
  return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
#endif
}
