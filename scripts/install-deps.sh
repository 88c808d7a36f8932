#!/usr/bin/env bash
# Installs everything shmq needs to build, test and benchmark on Debian 12.
set -euo pipefail
pkgs=(
  build-essential cmake pkg-config   # toolchain
  liburcu-dev                        # RCU hash tables in shmqd
  libcriterion-dev                   # test framework
  libinih-dev                        # shmqd config files
  spin                               # the ring protocol model
  clang libclang-rt-14-dev           # libFuzzer and sanitizer runtimes
  gnuplot-nox                        # shmq-bench plots
  dpdk-dev                           # rte_ring, a peer in shmq-bench
  procps util-linux                  # ps, script (tool tests)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
