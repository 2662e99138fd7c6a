#!/bin/sh
# Compiles runyard's native helpers at `npm install`. Never fails the install:
# - fork-server.c: without it, runyard starts steps with Node's own spawn, slower, and says so once;
# - egress-forward.c (static, to run inside any image): without it, a sandboxed agent cannot have
#   `network: model-only` and its turn says so;
# - cwd-check.c (static, to run inside any image): without it, a Docker step with a cwd is refused,
#   since the folder Docker mounts by path could not be checked to be the one the runner judged;
# - sandbox-holder-main.c (static, shown inside each sandbox bwrap makes): without it, sh and sleep
#   hold those (a clone's holder is the fork-server's own code, sandbox-holder.c).
cd "$(dirname "$0")" || exit 0
mkdir -p build
# Static where the C library's static archive is there (Debian's libc6-dev): each run's sandbox forks
# it twice or more (its door, its holder, each step), and a static copy has no loader's symbols to
# bind in each child, fewer mappings to copy and tear down, and fewer pages to copy on write (a
# run's sandbox took 10 to 20% less CPU, back to back). Else dynamic, its symbols bound at start.
fork_server_sources="fork-server.c steps.c step-events.c sandbox-entry.c sandbox-door.c sandbox-clone.c sandbox-holder.c step-filter.c"
# shellcheck disable=SC2086
if ${CC:-cc} -static -O2 -Wall -o build/fork-server.tmp $fork_server_sources 2>build/compile.log ||
  ${CC:-cc} -O2 -Wall -Wl,-z,now -o build/fork-server.tmp $fork_server_sources 2>>build/compile.log; then
  mv build/fork-server.tmp build/fork-server
else
  echo "runyard: could not compile native/fork-server.c (see native/build/compile.log);" \
    "steps will be started with Node's spawn, which is slower" >&2
fi
if ${CC:-cc} -static -O2 -Wall -o build/egress-forward.tmp egress-forward.c 2>build/compile-egress.log; then
  # Run inside containers as a user that is not the installer: executable by all, whatever the umask.
  chmod 755 build/egress-forward.tmp && mv build/egress-forward.tmp build/egress-forward
else
  echo "runyard: could not compile native/egress-forward.c statically (see native/build/compile-egress.log);" \
    "sandboxed agents can have network none or open, not model-only" >&2
fi
if ${CC:-cc} -static -O2 -Wall -o build/cwd-check.tmp cwd-check.c step-filter.c 2>build/compile-cwd-check.log; then
  chmod 755 build/cwd-check.tmp && mv build/cwd-check.tmp build/cwd-check
else
  echo "runyard: could not compile native/cwd-check.c statically (see native/build/compile-cwd-check.log);" \
    "Docker steps with a cwd will be refused" >&2
fi
if ${CC:-cc} -static -O2 -Wall -o build/sandbox-holder.tmp sandbox-holder-main.c sandbox-holder.c 2>build/compile-holder.log; then
  chmod 755 build/sandbox-holder.tmp && mv build/sandbox-holder.tmp build/sandbox-holder
else
  echo "runyard: could not compile native/sandbox-holder-main.c statically (see native/build/compile-holder.log);" \
    "each sandbox bwrap makes is held by sh and sleep, a few milliseconds more to make" >&2
fi
exit 0
