#!/usr/bin/env bash
# Installs what is needed, builds shmq three ways (release, ASan+UBSan,
# TSan), runs every test in each, checks the spin model of the ring and
# runs the fuzz targets for a bounded time. Exits non-zero on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=${JOBS:-$(nproc)}
out=${SHMQ_TEST_OUT:-$top/out}

bash scripts/install-deps.sh

status=0
step() { printf '\n==== %s\n' "$*"; }

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S "$top" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

run_ctest() { # dir, extra ctest args...
  local dir=$1; shift
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "$@") || status=1
}

step "release build and tests"
build "$out/release"
run_ctest "$out/release"

step "spin model of the ring protocol"
bash docs/model/check.sh || status=1

step "ASan+UBSan build and tests"
build "$out/asan" -DSHMQ_SANITIZE=address -DSHMQ_BUILD_BENCH=OFF
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_ctest "$out/asan" -LE nosan

step "TSan build and tests"
build "$out/tsan" -DSHMQ_SANITIZE=thread -DSHMQ_BUILD_BENCH=OFF
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  run_ctest "$out/tsan" -LE nosan

step "fuzz targets (clang libFuzzer, bounded time)"
CC=clang build "$out/fuzz" -DSHMQ_BUILD_FUZZ=ON -DSHMQ_BUILD_BENCH=OFF \
  -DSHMQ_BUILD_TOOLS=OFF -DSHMQ_BUILD_DAEMON=OFF
run_ctest "$out/fuzz" -L fuzz

step "summary"
if [ "$status" -eq 0 ]; then echo "all test stages passed"; else echo "some test stage FAILED"; fi
exit "$status"
