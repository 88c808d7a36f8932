#!/usr/bin/env bash
# Verify the shmq ring protocol model (ring.pml) with spin.
#
#   bash docs/model/check.sh            every check below
#   bash docs/model/check.sh NAME...    only the named checks
#
# Each check is one exhaustive spin run of ring.pml with a model size and a
# property: "safety" (assertions and invalid end states) or "np"
# (non-progress cycles).  The "pass" checks must find no error and must
# cover their whole state space; the "fail" checks run deliberately broken
# variants of the protocol and must be rejected with the stated kind of
# error, so that we know the properties can fail.
#
# Environment: JOBS (parallel runs, default 2), MEMLIM (MiB per run,
# default 1900), KEEP=1 (keep the build directory and print its path).
# Exits 0 if every check gave its expected result, 1 otherwise, 2 if spin
# or a C compiler is missing.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model="$here/ring.pml"
jobs=${JOBS:-2}
memlim=${MEMLIM:-1900}
cc=${CC:-gcc}

for tool in spin "$cc"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check.sh: $tool not found (apt-get install spin gcc)" >&2
        exit 2
    fi
done

# name | kind | expected | spin -D flags | log2 of the hash table size
#   expected: pass, or fail:<what pan must report>
# Sizes: P producers x M messages, C consumers, 2 slots everywhere.
checks=(
    # 1 x 3, 2 consumers, 1 abort: both eventcounts, ring wraps, full/empty
    "wait|safety|pass|-DNPROD=1 -DNMSGP=3 -DNCONS=2 -DMAXCRASH=0 -DMAXNACK=0 -DMAXRESTART=0|23"
    "wait-np|np|pass|-DNPROD=1 -DNMSGP=3 -DNCONS=2 -DMAXCRASH=0 -DMAXNACK=0 -DMAXRESTART=0|23"
    # 2 x 2, 1 consumer, 1 abort, 1 nack: producers racing for slots and tail
    "race|safety|pass|-DNPROD=2 -DNMSGP=2 -DNCONS=1 -DMAXCRASH=0 -DMAXRESTART=0|24"
    # 1 x 2, 2 consumers, a consumer crashes anywhere
    "ccrash|safety|pass|-DNPROD=1 -DNMSGP=2 -DNCONS=2 -DCRASH_PROD=0 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    "ccrash-np|np|pass|-DNPROD=1 -DNMSGP=2 -DNCONS=2 -DCRASH_PROD=0 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    # 1 x 1, 2 consumers, a consumer crashes, 1 nack, max_deliveries 1
    # (dead-lettering), the supervisor restarts once mid-repair
    "dlq|safety|pass|-DNPROD=1 -DNMSGP=1 -DNCONS=2 -DCRASH_PROD=0 -DMAXABORT=0 -DMAXNACK=1 -DMAXD=1 -DMAXRESTART=1|24"
    # 2 x 1, 1 consumer, a producer crashes anywhere, supervisor restarts once
    "pcrash|safety|pass|-DNPROD=2 -DNMSGP=1 -DNCONS=1 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=1|22"
    "pcrash-np|np|pass|-DNPROD=2 -DNMSGP=1 -DNCONS=1 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=1|22"
    # 1 x 2, 2 consumers, two crashes (the producer and a consumer)
    "crash2|safety|pass|-DNPROD=1 -DNMSGP=2 -DNCONS=2 -DMAXCRASH=2 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=0|25"

    # known-bad variants: each must be caught
    "broken-ec1|safety|fail:invalid end state|-DBROKEN_EC=1 -DNPROD=1 -DNMSGP=3 -DNCONS=2 -DMAXCRASH=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    "broken-ec2|safety|fail:invalid end state|-DBROKEN_EC=2 -DNPROD=1 -DNMSGP=3 -DNCONS=2 -DMAXCRASH=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    "abort-no-post|safety|fail:invalid end state|-DABORT_NO_POST -DNPROD=1 -DNMSGP=3 -DNCONS=2 -DMAXCRASH=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    "bit-no-repair|safety|fail:invalid end state|-DBIT_NO_REPAIR -DNPROD=1 -DNMSGP=1 -DNCONS=2 -DCRASH_PROD=0 -DMAXABORT=0 -DMAXNACK=1 -DMAXD=2 -DMAXRESTART=0|22"
    "rc-after|safety|fail:invalid end state|-DRC_AFTER -DNPROD=1 -DNMSGP=1 -DNCONS=2 -DCRASH_PROD=0 -DMAXABORT=0 -DMAXNACK=1 -DMAXRESTART=0|22"
    "repair-cond-wake|safety|fail:invalid end state|-DREPAIR_COND_WAKE -DNPROD=2 -DNMSGP=1 -DNCONS=1 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    "tail-reload|np|fail:non-progress cycle|-DTAIL_RELOAD -DNPROD=2 -DNMSGP=1 -DNCONS=1 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=0|22"
    "head-reload|np|fail:non-progress cycle|-DHEAD_RELOAD -DNPROD=1 -DNMSGP=2 -DNCONS=2 -DCRASH_PROD=0 -DMAXABORT=0 -DMAXNACK=0 -DMAXRESTART=0|22"
)

work=$(mktemp -d "${TMPDIR:-/tmp}/shmq-model.XXXXXX") || exit 2
if [ "${KEEP:-0}" = 1 ]; then
    echo "build directory: $work"
else
    trap 'rm -rf "$work"' EXIT
fi
trap 'exit 130' INT TERM

# run_one LINE: build and run one check in $work/NAME; writes NAME.res
run_one() {
    local name kind expect flags hash dir cflags pflags t0 t1 out
    IFS='|' read -r name kind expect flags hash <<<"$1"
    dir="$work/$name"
    mkdir -p "$dir"
    out="$dir/pan.out"
    if [ "$kind" = np ]; then
        cflags="-DNP -DCOLLAPSE"; pflags="-l"
    else
        cflags="-DSAFETY -DCOLLAPSE"; pflags=""
    fi
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    if ! (cd "$dir" && spin $flags -a "$model" >spin.out 2>&1); then
        { echo "RESULT ERROR"; echo "spin -a failed:"; cat "$dir/spin.out"; } >"$dir/res"
        return
    fi
    # shellcheck disable=SC2086
    if ! (cd "$dir" && "$cc" -O2 -w $cflags -DMEMLIM="$memlim" -o pan pan.c >cc.out 2>&1); then
        { echo "RESULT ERROR"; echo "compiling pan.c failed:"; cat "$dir/cc.out"; } >"$dir/res"
        return
    fi
    # shellcheck disable=SC2086
    (cd "$dir" && ./pan $pflags -m100000 -w"$hash" >"$out" 2>&1)
    t1=$(date +%s.%N)

    local errors verdict why
    errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | head -n1)
    [ -n "$errors" ] || errors=unknown
    verdict=ok; why=""
    case "$expect" in
    pass)
        if [ "$errors" != 0 ]; then
            verdict=FAIL; why="errors: $errors"
        elif grep -qE '^pan:[0-9]+: ' "$out"; then
            verdict=FAIL; why="error reported"
        elif grep -qE 'reached -DMEMLIM bound|max search depth too small|Search not completed|out of memory' "$out"; then
            verdict=FAIL; why="search incomplete"
        fi
        ;;
    fail:*)
        if [ "$errors" = unknown ] || [ "$errors" = 0 ]; then
            verdict=FAIL; why="the broken variant was not caught"
        elif ! grep -qE "^pan:[0-9]+: ${expect#fail:}" "$out"; then
            verdict=FAIL; why="caught, but not as: ${expect#fail:}"
        fi
        ;;
    esac
    local stored trans depth mem secs
    stored=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out" | head -n1)
    trans=$(sed -n 's/^ *\([0-9.e+]*\) transitions.*/\1/p' "$out" | head -n1)
    depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | head -n1)
    mem=$(sed -n 's/^ *\([0-9.]*\).*total actual memory usage.*/\1/p' "$out" | head -n1)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    {
        echo "RESULT $verdict"
        printf '%-17s %-6s %-24s %-4s %12s %12s %6s %8s %7s  %s\n' \
            "$name" "$kind" "${expect#fail:}" "$verdict" "${stored:--}" "${trans:--}" \
            "${depth:--}" "${mem:--}" "$secs" "$why"
        if [ "$verdict" != ok ]; then
            sed -n '/^pan:/p;/errors:/p' "$out" | head -n 8 | sed 's/^/    /'
            echo "    replay: cd $dir && spin $flags -t -p -g ring.pml (run with KEEP=1)"
        fi
    } >"$dir/res"
}

selected=()
if [ $# -gt 0 ]; then
    for want in "$@"; do
        found=0
        for c in "${checks[@]}"; do
            if [ "${c%%|*}" = "$want" ]; then selected+=("$c"); found=1; fi
        done
        if [ $found = 0 ]; then echo "check.sh: no check named $want" >&2; exit 2; fi
    done
else
    selected=("${checks[@]}")
fi

# biggest first, so that the parallel runs end close together
order=()
for c in "${selected[@]}"; do
    case "${c%%|*}" in crash2|race|dlq) order=("$c" "${order[@]}") ;; *) order+=("$c") ;; esac
done

start=$(date +%s.%N)
running=0
for c in "${order[@]}"; do
    run_one "$c" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
end=$(date +%s.%N)

printf '%-17s %-6s %-24s %-4s %12s %12s %6s %8s %7s\n' \
    check kind expected ok states transitions depth "MiB" "s"
status=0
for c in "${selected[@]}"; do
    name=${c%%|*}
    if [ -f "$work/$name/res" ]; then
        tail -n +2 "$work/$name/res"
        head -n1 "$work/$name/res" | grep -q '^RESULT ok$' || status=1
    else
        echo "$name: no result"; status=1
    fi
done
awk -v a="$start" -v b="$end" 'BEGIN { printf "total %.0f s wall\n", b - a }'
if [ $status = 0 ]; then echo "all checks gave their expected result"; else echo "SOME CHECKS FAILED"; fi
exit $status
