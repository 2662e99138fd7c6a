/*
 * runyard's egress forwarder: runs inside a sandboxed agent's container, which has no network
 * of its own (Docker network "none": only loopback). It listens on 127.0.0.1:PORT, relays every
 * connection to the runner's egress proxy through a Unix socket mounted into the container
 * (src/exec/egress-proxy.ts decides what may pass), and runs the agent's command as its child,
 * whose HTTPS_PROXY/HTTP_PROXY name that port.
 *
 *   egress-forward PORT SOCKET -- COMMAND [ARG...]
 *
 * It exits as the command does (its code, or 128 + the signal that ended it) and passes
 * SIGTERM, SIGINT and SIGHUP on to the command's process group, so a stopped container stops
 * the agent with the grace the runner gives it. Built static (native/build.sh), so it runs in
 * any image, with or without a C library.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PAIRS 256
#define BUFFER 65536

struct pair {
  int fd[2]; /* client, upstream; -1 once closed */
  int open[2]; /* whether each side still sends */
};

static struct pair pairs[MAX_PAIRS];
static char buffer[BUFFER];

static void fail(const char *what) {
  fprintf(stderr, "runyard egress-forward: %s: %s\n", what, strerror(errno));
  exit(70);
}

static int connect_upstream(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un address = {.sun_family = AF_UNIX};
  strncpy(address.sun_path, path, sizeof address.sun_path - 1);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static void close_pair(struct pair *p) {
  for (int k = 0; k < 2; k++)
    if (p->fd[k] >= 0) close(p->fd[k]);
  p->fd[0] = p->fd[1] = -1;
}

/* Moves what side `from` has to the other side; a side at its end half-closes the other. */
static void relay(struct pair *p, int from) {
  ssize_t got = read(p->fd[from], buffer, BUFFER);
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (got <= 0) {
    p->open[from] = 0;
    shutdown(p->fd[1 - from], SHUT_WR);
    if (!p->open[0] && !p->open[1]) close_pair(p);
    return;
  }
  for (ssize_t at = 0; at < got;) {
    ssize_t put = write(p->fd[1 - from], buffer + at, (size_t)(got - at));
    if (put < 0) {
      if (errno == EINTR) continue;
      close_pair(p);
      return;
    }
    at += put;
  }
}

int main(int argc, char **argv) {
  if (argc < 5 || strcmp(argv[3], "--") != 0) {
    fprintf(stderr, "usage: egress-forward PORT SOCKET -- COMMAND [ARG...]\n");
    return 64;
  }
  int port = atoi(argv[1]);
  const char *socket_path = argv[2];
  signal(SIGPIPE, SIG_IGN);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) fail("socket");
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0) fail("bind 127.0.0.1");
  if (listen(listener, 64) < 0) fail("listen");

  sigset_t handled, original;
  sigemptyset(&handled);
  sigaddset(&handled, SIGCHLD);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  sigprocmask(SIG_BLOCK, &handled, &original);
  int sigfd = signalfd(-1, &handled, SFD_CLOEXEC);
  if (sigfd < 0) fail("signalfd");

  pid_t child = fork();
  if (child < 0) fail("fork");
  if (child == 0) {
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, &original, NULL);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[4], argv + 4);
    fprintf(stderr, "runyard: cannot start \"%s\": %s\n", argv[4], strerror(errno));
    _exit(127);
  }
  setpgid(child, child);
  for (int i = 0; i < MAX_PAIRS; i++) pairs[i].fd[0] = pairs[i].fd[1] = -1;

  struct pollfd fds[2 + 2 * MAX_PAIRS];
  int owner[2 + 2 * MAX_PAIRS], side[2 + 2 * MAX_PAIRS];
  for (;;) {
    int n = 0;
    fds[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
    for (int i = 0; i < MAX_PAIRS; i++) {
      for (int k = 0; k < 2; k++) {
        if (pairs[i].fd[k] < 0 || !pairs[i].open[k]) continue;
        owner[n] = i, side[n] = k;
        fds[n++] = (struct pollfd){.fd = pairs[i].fd[k], .events = POLLIN};
      }
    }
    if (poll(fds, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    if (fds[0].revents) {
      struct signalfd_siginfo info;
      if (read(sigfd, &info, sizeof info) == sizeof info) {
        if (info.ssi_signo == SIGCHLD) {
          int status;
          if (waitpid(child, &status, WNOHANG) == child) {
            if (WIFEXITED(status)) return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
          }
        } else {
          kill(-child, (int)info.ssi_signo);
        }
      }
    }
    if (fds[1].revents) {
      int client = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
      if (client >= 0) {
        struct pair *free_pair = NULL;
        for (int i = 0; i < MAX_PAIRS && !free_pair; i++)
          if (pairs[i].fd[0] < 0 && pairs[i].fd[1] < 0) free_pair = &pairs[i];
        int upstream = free_pair ? connect_upstream(socket_path) : -1;
        if (upstream < 0) {
          close(client);
        } else {
          *free_pair = (struct pair){{client, upstream}, {1, 1}};
        }
      }
    }
    for (int i = 2; i < n; i++) {
      if (!fds[i].revents) continue;
      struct pair *p = &pairs[owner[i]];
      if (p->fd[side[i]] == fds[i].fd && p->open[side[i]]) relay(p, side[i]);
    }
  }
}
