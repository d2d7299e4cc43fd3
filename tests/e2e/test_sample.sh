#!/usr/bin/env bash
# gpumux-sample on gpusim's libcuda.so.1: the nbody-style summary, its options and its errors.
# Standalone: it needs no daemon, only the sample and gpusim's driver library.
set -u

B=${GM_BUILD_DIR:?GM_BUILD_DIR must point at the build directory}
SRC=${GM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SAMPLE="$B/bin/gpumux-sample"
SIMDIR="$B/lib/gpusim"

# The kernel is hand-written PTX that gpusim never compiles. Where a toolkit happens to be
# installed, its assembler checks it for the GPUs we target; the build itself never needs one.
PTXAS=$(command -v ptxas)
for p in /usr/local/cuda/bin/ptxas /usr/local/cuda-*/bin/ptxas; do
    [ -z "$PTXAS" ] && [ -x "$p" ] && PTXAS=$p
done
if [ -n "$PTXAS" ]; then
    for arch in sm_75 sm_90; do
        if ! msg=$("$PTXAS" -arch=$arch "$SRC/samples/nbody.ptx" -o /dev/null 2>&1); then
            echo "FAIL ptxas -arch=$arch samples/nbody.ptx"
            printf '     %s\n' "$msg"
            echo "0 passed, 1 failed"
            exit 1
        fi
    done
    echo "ok   samples/nbody.ptx assembles for sm_75 and sm_90 ($PTXAS)"
fi

if [ ! -e "$SIMDIR/libcuda.so.1" ]; then
    echo "skip: $SIMDIR/libcuda.so.1 is not built"
    exit 77
fi
if [ ! -x "$SAMPLE" ]; then
    echo "FAIL: $SAMPLE is not built"
    exit 1
fi

T=$(mktemp -d /tmp/gm-sample.XXXXXX)
trap 'rm -rf "$T"' EXIT
export GPUSIM_STATE="$T/state"
PASSES=0
FAILS=0

pass() { PASSES=$((PASSES + 1)); echo "ok   $1"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL $1"; shift; printf '     %s\n' "$@"; }

# run ARGS...: runs the sample on gpusim; sets RC and OUT (stdout and stderr).
run() {
    OUT=$(LD_LIBRARY_PATH="$SIMDIR" "$SAMPLE" "$@" 2>&1)
    RC=$?
}

# expect NAME RC REGEX: checks the last run's exit status and that its output matches REGEX.
expect() {
    if [ "$RC" != "$2" ]; then
        fail "$1" "exit status $RC, wanted $2" "output: $OUT"
    elif ! grep -Eq -- "$3" <<<"$OUT"; then
        fail "$1" "output does not match /$3/" "output: $OUT"
    else
        pass "$1"
    fi
}

# check_summary NAME BODIES ITERATIONS: the three lines of NVIDIA's nbody -benchmark.
check_summary() {
    local name=$1 n=$2 iters=$3 line rate
    line=$(grep -E '^[0-9]+ bodies, total time for [0-9]+ iterations: [0-9]+\.[0-9]{3} ms$' <<<"$OUT")
    if [ -z "$line" ]; then
        fail "$name: time line" "output: $OUT"; return
    fi
    if [ -n "$n" ] && [[ "$line" != "$n bodies, total time for $iters iterations: "* ]]; then
        fail "$name: bodies and iterations" "got: $line"; return
    fi
    rate=$(sed -nE 's/^= ([0-9]+\.[0-9]{3}) billion interactions per second$/\1/p' <<<"$OUT")
    if [ -z "$rate" ] || ! awk -v r="$rate" 'BEGIN { exit !(r > 0) }'; then
        fail "$name: interactions per second" "rate '$rate'" "output: $OUT"; return
    fi
    if ! grep -Eq '^= [0-9]+\.[0-9]{3} single-precision GFLOP/s at 20 flops per interaction$' \
        <<<"$OUT"; then
        fail "$name: GFLOP/s line" "output: $OUT"; return
    fi
    pass "$name ($rate billion interactions/s)"
}

run -benchmark -i=5 -n=4096
expect "benchmark exits 0 and names the device" 0 '^> Compute [0-9]+\.[0-9]+ CUDA device: \[.+\]$'
check_summary "benchmark summary" 4096 5

run -benchmark -quiet -i=3 -n=1024
expect "quiet exits 0" 0 'bodies, total time'
if [ "$(wc -l <<<"$OUT")" = 3 ]; then pass "quiet prints three lines"; else
    fail "quiet prints three lines" "output: $OUT"; fi
check_summary "quiet summary" 1024 3

run -benchmark -quiet -i=2 -numbodies=300
check_summary "-numbodies= and a count that is not a multiple of 256" 300 2

start=$(date +%s.%N)
run -benchmark -quiet -n=2048 -t=1
end=$(date +%s.%N)
expect "-t exits 0" 0 'bodies, total time'
check_summary "-t summary" "" ""
if awk -v s="$start" -v e="$end" 'BEGIN { exit !(e - s >= 1.0 && e - s < 30) }'; then
    pass "-t=1 runs for about a second"
else
    fail "-t=1 runs for about a second" "took $(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }') s"
fi

run --help
expect "--help exits 0" 0 '^Usage: gpumux-sample '
run -benchmark -frobnicate
expect "unknown option exits 2" 2 "^gpumux-sample: unknown option '-frobnicate'"
run -i=zero
expect "bad -i exits 2" 2 "^gpumux-sample: -i: 'zero' is not a whole number"
run -n
expect "option without value exits 2" 2 "^gpumux-sample: option '-n' needs a value"
run -benchmark -device=7
expect "-device=7 is a clear error" 1 '^gpumux-sample: -device=7: no such CUDA device \([0-9]+ visible'

# Without any libcuda.so.1 on the path; only meaningful where no driver is installed.
if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    OUT=$(env LD_LIBRARY_PATH="$T/empty" "$SAMPLE" -benchmark 2>&1)
    RC=$?
    expect "no libcuda.so.1 is a clear error" 1 '^gpumux-sample: cannot load libcuda\.so\.1: '
fi

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
