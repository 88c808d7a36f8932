#!/usr/bin/env bash
# Installs what is needed, builds shmq, starts shmqd on an instance of its
# own and runs the demo through it: a producer hands jobs to a pool of
# worker processes, one worker is killed with SIGKILL in the middle of a
# job, its job is delivered again to another worker, and the stats at the
# end show every job done with the redelivery counted.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh
build=${BUILD_DIR:-$top/out/release}
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
BUILD_DIR=$build exec bash scripts/demo.sh "$@"
