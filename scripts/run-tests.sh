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

passed=0 failed=0
run_ctest() { # dir, extra ctest args...
  local dir=$1; shift
  local log="$dir/ctest.log"
  local rc
  set +e
  (cd "$dir" && ctest --output-on-failure -j "$jobs" "$@") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || status=1
  # "N% tests passed, F tests failed out of T"
  local line total fails
  line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  if [ -n "$line" ]; then
    fails=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
    passed=$((passed + total - fails))
    failed=$((failed + fails))
  else
    status=1
  fi
}

step "release build and tests"
build "$out/release"
run_ctest "$out/release"

step "spin model of the ring protocol"
if bash docs/model/check.sh; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; fi

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

step "summary (release, ASan+UBSan and TSan test runs, spin model, fuzzing)"
if [ "$status" -eq 0 ]; then echo "all test stages passed"; else echo "some test stage FAILED"; fi
echo "total: $passed passed, $failed failed"
exit "$status"
