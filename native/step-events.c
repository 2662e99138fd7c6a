/*
 * The fork-server's events to the runner (fork-server.c lists them): each a 12-byte header and
 * its body, on stdout or on the event pipe, and a step's output moved there from its pipe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include "steps.h"

/* Where events go: stdout, or the event pipe once the runner has opened it. */
int out_fd = 1;
/* Whether output is spliced to out_fd (a pipe or a socket) rather than copied. */
int spliced;
/* Whole pages of its own: a door drops them (madvise) rather than writing a megabyte of zeros. */
char chunk[CHUNK] __attribute__((aligned(4096)));

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

void send_event(uint32_t slot, char type, const void *data, uint32_t length) {
  unsigned char header[12] = {0};
  memcpy(header, &slot, 4);
  header[4] = (unsigned char)type;
  memcpy(header + 8, &length, 4);
  struct iovec iov[2] = {{header, 12}, {(void *)data, length}};
  /* No data: the header alone, its body to follow (relay_spliced). */
  write_all(iov, data && length ? 2 : 1);
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
void relay_spliced(uint32_t slot, char type, int fd, int available) {
  if (available > CHUNK) available = CHUNK;
  send_event(slot, type, NULL, (uint32_t)available);
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
