#!/usr/bin/env bash
# Starts shmqd on an instance of its own, runs shmq-demo through it (a pool
# of workers, one killed with SIGKILL in the middle of a job, its job
# delivered again to another), shows what shmqd logged, and stops shmqd.
#
#   BUILD_DIR       build tree with shmqd and shmq-demo (default: build;
#                   configured and built here if they are missing)
#   SHMQ_INSTANCE   instance to use (default: demo)
# Arguments are passed to shmq-demo (e.g. -n 200 -w 8).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
instance=${SHMQ_INSTANCE:-demo}

if [ ! -x "$build/daemon/shmqd" ] || [ ! -x "$build/examples/shmq-demo" ]; then
  cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$(nproc)" --target shmqd shmq-demo >/dev/null
fi

log=$(mktemp "${TMPDIR:-/tmp}/shmqd-demo.XXXXXX")
"$build/daemon/shmqd" --instance "$instance" 2>"$log" &
daemon=$!
stop() {
  if kill -0 "$daemon" 2>/dev/null; then
    kill -TERM "$daemon"
    wait "$daemon" || true
  fi
}
trap 'stop; rm -f "$log"' EXIT

# shmq-demo waits (a few seconds at most) for shmqd to answer.
status=0
"$build/examples/shmq-demo" --instance "$instance" "$@" || status=$?
stop
echo
echo "shmqd's log:"
sed 's/^/  /' "$log"
exit "$status"
