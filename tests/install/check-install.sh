#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and builds the README's
# example program against it twice: with pkg-config and with CMake's
# find_package(shmq). Checks the installed headers are only the public ones
# and the shared library exports only shmq_* symbols.
set -euo pipefail
src=$1 build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
ls "$tmp/prefix/include/shmq" | sort > "$tmp/headers"
for h in admin.h shmq.h version.h; do
  grep -qx "$h" "$tmp/headers" || { echo "missing installed header $h"; exit 1; }
done
if grep -qv -e '^admin.h$' -e '^shmq.h$' -e '^version.h$' -e '^ctl.h$' "$tmp/headers"; then
  echo "unexpected installed headers:"; cat "$tmp/headers"; exit 1
fi

# The example from the README, verbatim.
awk '/^```c$/{f=1;next} /^```$/{if(f){exit}} f' "$src/README.md" > "$tmp/example.c"
grep -q shmq_open "$tmp/example.c" || { echo "README example not found"; exit 1; }

libdir=$(find "$tmp/prefix" -name shmq.pc -printf '%h\n' | head -1)
PKG_CONFIG_PATH=$libdir cc -Wall -Werror "$tmp/example.c" \
  $(PKG_CONFIG_PATH=$libdir pkg-config --cflags --libs shmq) -o "$tmp/ex-pc"

mkdir -p "$tmp/cm"
cp "$tmp/example.c" "$tmp/cm/example.c"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(example C)
find_package(shmq 1 REQUIRED)
add_executable(example example.c)
target_link_libraries(example PRIVATE shmq::shmq)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null

so=$(find "$tmp/prefix" -name 'libshmq.so.1' | head -1)
[ -n "$so" ] || { echo "no libshmq.so.1 (soname = major version)"; exit 1; }
bad=$(nm -D --defined-only "$so" | awk '$2 ~ /[TDBR]/ {print $3}' | grep -v '^shmq_' | grep -v '^SHMQ_1$' || true)
[ -z "$bad" ] || { echo "symbols exported outside shmq_*: $bad"; exit 1; }
echo "1 passed, 0 failed"
