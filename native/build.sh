#!/bin/sh
# Compiles the fork-server (fork-server.c) at `npm install`. Never fails the install: without
# the helper, runyard starts steps with Node's own spawn, slower, and says so once.
cd "$(dirname "$0")" || exit 0
mkdir -p build
if ${CC:-cc} -O2 -Wall -o build/fork-server.tmp fork-server.c 2>build/compile.log; then
  mv build/fork-server.tmp build/fork-server
else
  echo "runyard: could not compile native/fork-server.c (see native/build/compile.log);" \
    "steps will be started with Node's spawn, which is slower" >&2
fi
exit 0
