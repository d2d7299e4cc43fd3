#!/usr/bin/env bash
# Real-GPU checks: the seed's walk-through against the real driver and NVIDIA's MPS binaries.
# Skips (exit 77) with a message where there is no GPU. Never changes the compute mode or MIG
# settings and never resets the GPU; MPS pipe and log directories live under a temporary
# directory and the control daemons are stopped before the script ends.
set -u
B=${GM_BUILD_DIR:?GM_BUILD_DIR must point at the build directory}
ITER_SECONDS=${GM_GPU_SECONDS:-20}

if ! ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml.so.1' && [ ! -e /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 ]; then
    echo "skip: no NVIDIA driver here (libnvidia-ml.so.1 not found); real-GPU checks need one"
    exit 77
fi
if ! nvidia-smi -L >/dev/null 2>&1; then
    echo "skip: nvidia-smi finds no GPU"
    exit 77
fi

T=$(mktemp -d /tmp/gm-gpu.XXXXXX)
export GPUMUX_SOCKET="$T/run/gpumux.sock"
export GM_GPU_TAG="$T"
FAILS=0
PASSES=0
pass() { PASSES=$((PASSES + 1)); echo "ok: $*"; }
fail() { FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
gm() { "$B/bin/gpumux" "$@"; }
cleanup() {
    gm mps stop --force >/dev/null 2>&1
    [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    for p in /proc/[0-9]*; do
        { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "GM_GPU_TAG=$T" && kill -9 "${p#/proc/}" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/state" "$T/run"
"$B/bin/gpumuxd" --driver nvml --state-dir "$T/state" --run-dir "$T/run" --poll-interval-ms 100 \
    >"$T/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do gm info >/dev/null 2>&1 && break; sleep 0.1; done
gm info | grep -q 'Driver: *nvml' && pass "gpumuxd uses the real driver" || { fail "driver: $(gm info)"; cat "$T/daemon.log"; exit 1; }
nvidia-smi --query-gpu=index,name,memory.total --format=csv,noheader >"$T/nvsmi.csv"
gm smi --query-gpu=index,name,memory.total --format=csv,noheader >"$T/gmsmi.csv"
diff -q "$T/nvsmi.csv" "$T/gmsmi.csv" >/dev/null && pass "smi query matches nvidia-smi" ||
    fail "smi query differs: $(diff "$T/nvsmi.csv" "$T/gmsmi.csv")"
gm smi

rate() { # the interactions/s a sample printed in its log
    gm logs "$1" | sed -n 's/^= \([0-9.]*\) billion interactions per second/\1/p' | tail -n1
}
wait_done() { for n in "$@"; do
    for _ in $(seq 1 $((ITER_SECONDS * 20 + 600))); do
        s=$(gm ps -o json | python3 -c "import json,sys; print([w['state'] for w in json.load(sys.stdin)['workloads'] if w['name']=='$n'][0])")
        [ "$s" = exited ] || [ "$s" = stopped ] && break
        sleep 0.1
    done
done; }
phase() { # NAME [run options for sample a] -- [for sample b]
    local name=$1 a=$2 b=$3
    # shellcheck disable=SC2086
    gm run "$name-a" --gpu 0 $a -- "$B/bin/gpumux-sample" -benchmark -t="$ITER_SECONDS" >/dev/null
    # shellcheck disable=SC2086
    gm run "$name-b" --gpu 0 $b -- "$B/bin/gpumux-sample" -benchmark -t="$ITER_SECONDS" >/dev/null
    sleep 3
    gm smi | tee "$T/$name.smi"
    wait_done "$name-a" "$name-b"
    echo "$name: a $(rate "$name-a") b $(rate "$name-b") billion interactions/s"
}

gm run solo --gpu 0 -- "$B/bin/gpumux-sample" -benchmark -t="$ITER_SECONDS" >/dev/null
wait_done solo
solo=$(rate solo)
[ -n "$solo" ] && pass "sample alone: $solo billion interactions/s" || fail "sample alone: $(gm logs solo)"

phase ts "" ""
grep -Eq ' C +.*gpumux-sample' "$T/ts.smi" && pass "time-sliced samples show as type C" || fail "no C processes"

if command -v nvidia-cuda-mps-control >/dev/null; then
    gm mps start --gpu 0 && pass "MPS started (compute mode unchanged)" || fail "mps start"
    phase mps "" ""
    grep -Eq 'M\+C +.*gpumux-sample' "$T/mps.smi" && pass "MPS clients show as M+C" || fail "no M+C processes"
    grep -q 'nvidia-cuda-mps-server' "$T/mps.smi" && pass "the MPS server shows" || fail "no MPS server"
    phase split "--compute 30" "--compute 70"
    gm mps stop --gpu 0 --force && pass "MPS stopped" || fail "mps stop"
else
    echo "skip: nvidia-cuda-mps-control not installed; MPS phases not run"
fi
# Limits enforced by libgpumux.so on the real driver (GPU 0 is shared again by now).
if [ -e "$B/lib/libgpumux.so" ]; then
    gm run memsmall --gpu 0 --memory 1M -- "$B/bin/gpumux-sample" -benchmark -i=1 >/dev/null
    wait_done memsmall
    gm logs memsmall | grep -q 'CUDA_ERROR_OUT_OF_MEMORY' && pass "sample refused past a 1 MiB limit" ||
        fail "memory limit with the sample: $(gm logs memsmall | tail -n 3)"
    if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
        NVCC=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
        if "$NVCC" -o "$T/alloc_until_full" "$(dirname "$0")/alloc_until_full.cu" >"$T/nvcc.log" 2>&1; then
            gm run rtmem --gpu 0 --memory 512M -- "$T/alloc_until_full" >/dev/null
            wait_done rtmem
            gm logs rtmem
            gm logs rtmem | grep -q '^allocated 512 MiB' && pass "CUDA runtime program stops at 512 MiB" ||
                fail "runtime program under a 512 MiB limit: $(gm logs rtmem)"
            gm logs rtmem | grep -q 'total 512 MiB' && pass "cudaMemGetInfo reports the limit" ||
                fail "cudaMemGetInfo under the limit"
        else
            fail "nvcc could not build alloc_until_full.cu: $(tail -n 5 "$T/nvcc.log")"
        fi
    else
        echo "skip: nvcc not installed; the CUDA runtime memory check was not run"
    fi
    gm run capsolo --gpu 0 -- "$B/bin/gpumux-sample" -benchmark -n=16384 -t="$ITER_SECONDS" >/dev/null
    wait_done capsolo
    gm run cap30 --gpu 0 --compute 30 -- "$B/bin/gpumux-sample" -benchmark -n=16384 -t="$ITER_SECONDS" >/dev/null
    gm run cap70 --gpu 0 --compute 70 -- "$B/bin/gpumux-sample" -benchmark -n=16384 -t="$ITER_SECONDS" >/dev/null
    wait_done cap30 cap70
    gm run cap50 --gpu 0 --compute 50 -- "$B/bin/gpumux-sample" -benchmark -n=16384 -t="$ITER_SECONDS" >/dev/null
    wait_done cap50
    shares=$(python3 -c "s=$(rate capsolo); print(' '.join(f'{100*float(x)/s:.1f}' for x in ('$(rate cap30)','$(rate cap70)','$(rate cap50)')))")
    echo "compute caps 30/70 together and 50 alone, percent of the solo rate: $shares"
    python3 -c "import sys; a,b,c=map(float,'$shares'.split()); sys.exit(0 if abs(a-30)<=5 and abs(b-70)<=5 and abs(c-50)<=5 else 1)" &&
        pass "compute caps within 5 points on the real GPU: $shares" || fail "compute caps: $shares"
    if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
        gm run torchfree --gpu 0 -- python3 "$(dirname "$0")/torch_matmul.py" 10 >/dev/null
        gm run torchcap --gpu 0 --compute 50 --memory 2G -- python3 "$(dirname "$0")/torch_matmul.py" 10 >/dev/null
        wait_done torchfree torchcap
        echo "PyTorch uncapped: $(gm logs torchfree | tr '\n' ' ')"
        echo "PyTorch at 50% and 2 GiB: $(gm logs torchcap | tr '\n' ' ')"
        gm logs torchcap | grep -Eq 'held (1[0-9]{3}|20[0-4][0-9]) MiB' && pass "PyTorch held at most 2 GiB" ||
            fail "PyTorch memory under 2 GiB: $(gm logs torchcap)"
    else
        echo "skip: PyTorch with CUDA not installed; the PyTorch checks were not run"
    fi
fi
echo
echo "results (billion interactions/s, $(nvidia-smi --query-gpu=name --format=csv,noheader -i 0)):"
echo "  alone: $solo"
for p in ts mps split; do
    [ -n "$(gm ps -o json | grep "\"$p-a\"")" ] && echo "  $p: $(rate "$p-a") + $(rate "$p-b")"
done
echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
