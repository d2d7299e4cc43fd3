#!/usr/bin/env bash
# device-check.sh [--gpusim] OUT_DIR: every real-driver check of gpumux, run from the unpacked GPU
# bundle (docs/gpu-check.md) or, with GM_BUILD_DIR set, from a build tree (tests/gpu/run.sh).
# Writes OUT_DIR/results.txt (one line per check: pass, fail or skip, with its figures) and the
# logs beside it. Without a GPU it says so and exits 77; --gpusim runs the same checks on the
# bundle's simulated driver with short durations. Never changes the compute mode or MIG settings
# and never resets the GPU; MPS pipe and log directories live under a temporary directory, and
# every process it started (daemon, workloads, MPS daemons) is stopped before it ends.
set -u
SIM=0
if [ "${1:-}" = --gpusim ]; then SIM=1; shift; fi
OUT=${1:?usage: device-check.sh [--gpusim] OUT_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
B=${GM_BUILD_DIR:-$(cd "$HERE/../.." && pwd)}
if [ ! -x "$B/bin/gpumuxd" ]; then
    echo "no gpumuxd in $B/bin: run this from the unpacked bundle, or set GM_BUILD_DIR" >&2
    exit 2
fi
if [ "$SIM" = 1 ]; then SECS=${GM_GPU_SECONDS:-2}; else SECS=${GM_GPU_SECONDS:-15}; fi
# The whole run stays within GM_GPU_BUDGET seconds (default 420: 7 minutes); each wait has its
# own limit too, and a check that would start past the budget is skipped.
START=$(date +%s)
DEADLINE=$((START + ${GM_GPU_BUDGET:-420}))
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
RES=$OUT/results.txt
: >"$RES"
PASSES=0 FAILS=0 SKIPS=0
result() { # STATUS CHECK DETAIL
    printf '%-4s %-14s %s\n' "$1" "$2" "$3" | tee -a "$RES"
    case $1 in pass) PASSES=$((PASSES + 1)) ;; fail) FAILS=$((FAILS + 1)) ;; *) SKIPS=$((SKIPS + 1)) ;; esac
}
note() { printf '#    %s\n' "$*" | tee -a "$RES"; }

if [ "$SIM" = 0 ]; then
    if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
        echo "skip: no NVIDIA GPU here (nvidia-smi missing or finds none); --gpusim checks the script on the simulated driver" |
            tee "$RES"
        exit 77
    fi
fi

T=$(mktemp -d /tmp/gm-gpu.XXXXXX)
export GPUMUX_SOCKET="$T/run/gpumux.sock"
export GM_GPU_TAG="$T"
gm() { "$B/bin/gpumux" "$@"; }
DPID=
cleanup() {
    gm mps stop --force >/dev/null 2>&1
    [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    local p
    for _ in 1 2 3; do
        for p in /proc/[0-9]*; do
            [ "${p#/proc/}" = $$ ] && continue
            { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "GM_GPU_TAG=$T" &&
                kill -9 "${p#/proc/}" 2>/dev/null
        done
        sleep 0.1
    done
    cp "$T/daemon.log" "$OUT/daemon.log" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$T/state" "$T/run" "$T/logs"
if [ "$SIM" = 1 ]; then
    export GPUSIM_STATE="$T/run/gpusim.state"
    drv=(--driver sim --gpusim-state "$GPUSIM_STATE" --cgroup-root none)
else
    drv=(--driver nvml)
fi
"$B/bin/gpumuxd" "${drv[@]}" --state-dir "$T/state" --run-dir "$T/run" --log-dir "$T/logs" \
    --poll-interval-ms 100 >"$T/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do gm info >/dev/null 2>&1 && break; sleep 0.1; done
smi_of() { if [ "$SIM" = 1 ]; then gm smi "$@"; else nvidia-smi "$@"; fi; }
{
    echo "# gpumux device check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $([ "$SIM" = 1 ] && echo "gpusim (simulated driver)" || echo "real driver")"
    echo "# gpu: $(smi_of --query-gpu=name --format=csv,noheader -i 0 2>&1)"
    echo "# driver: $(smi_of --query-gpu=driver_version --format=csv,noheader -i 0 2>&1)"
    echo "# seconds per load phase: $SECS"
} | tee -a "$RES"
want=$([ "$SIM" = 1 ] && echo sim || echo nvml)
if gm info | grep -q "Driver: *$want"; then
    result pass daemon "gpumuxd runs on the $want driver"
else
    result fail daemon "gpumuxd: $(gm info 2>&1 | head -n 3 | tr '\n' ' ') $(tail -n 3 "$T/daemon.log" | tr '\n' ' ')"
    exit 1
fi

q=index,name,uuid,pci.bus_id,memory.total
gm smi --query-gpu=$q --format=csv,noheader >"$OUT/gmsmi.csv" 2>&1
gm smi >"$OUT/gmsmi.txt" 2>&1
if [ "$SIM" = 1 ]; then
    [ -s "$OUT/gmsmi.csv" ] && result pass inventory "gpumux smi lists $(wc -l <"$OUT/gmsmi.csv") GPUs (no nvidia-smi to compare with under gpusim)" ||
        result fail inventory "gpumux smi printed nothing"
else
    nvidia-smi --query-gpu=$q --format=csv,noheader >"$OUT/nvsmi.csv" 2>&1
    nvidia-smi >"$OUT/nvsmi.txt" 2>&1
    if diff "$OUT/nvsmi.csv" "$OUT/gmsmi.csv" >"$OUT/inventory.diff"; then
        result pass inventory "gpumux smi --query-gpu=$q matches nvidia-smi ($(wc -l <"$OUT/nvsmi.csv") GPUs)"
    else
        result fail inventory "gpumux smi differs from nvidia-smi: $(head -c 300 "$OUT/inventory.diff" | tr '\n' ' ')"
    fi
fi

in_budget() { # CHECK SECONDS: may a check that takes SECONDS still start?
    if [ $(($(date +%s) + $2)) -gt "$DEADLINE" ]; then
        result skip "$1" "the time budget (GM_GPU_BUDGET) is spent"
        return 1
    fi
}
state_of() { gm ps -o json | python3 -c "import json,sys; print(([w['state'] for w in json.load(sys.stdin)['workloads'] if w['name']=='$1'] or ['none'])[0])"; }
wait_done() { # LIMIT NAME...: waits until each workload ended; stops those still running at LIMIT
    local limit=$(($(date +%s) + $1)) n s
    shift
    for n in "$@"; do
        while :; do
            s=$(state_of "$n")
            case $s in exited | stopped | failed | none) break ;; esac
            if [ "$(date +%s)" -ge "$limit" ]; then
                echo "$n still $s at its time limit: stopped" >>"$OUT/timeouts.log"
                gm stop "$n" >/dev/null 2>&1
                break
            fi
            sleep 0.5
        done
        gm logs "$n" >"$OUT/$n.log" 2>&1
    done
}
rate() { sed -n 's/^= \([0-9.]*\) billion interactions per second.*/\1/p' "$OUT/$1.log" | tail -n1; }
sample() { # NAME [RUN OPTIONS] [-- SAMPLE OPTIONS]: starts one sample for SECS seconds
    local n=$1 opts=()
    shift
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    gm run "$n" --gpu 0 "${opts[@]}" -- "$B/bin/gpumux-sample" -benchmark -t="$SECS" "$@" \
        >/dev/null 2>>"$OUT/run-errors.log"
}
LIMIT=$((SECS + 60))

if in_budget solo $LIMIT; then
    sample solo
    wait_done $LIMIT solo
    solo=$(rate solo)
    [ -n "$solo" ] && result pass solo "sample alone: $solo billion interactions/s" ||
        result fail solo "sample alone: $(tail -n 3 "$OUT/solo.log" | tr '\n' ' ')"
fi

pair() { # PHASE [options a] [options b]: two samples at once on GPU 0, nvidia-smi while they run
    local p=$1 a=$2 b=$3
    # shellcheck disable=SC2086
    sample "$p-a" $a
    # shellcheck disable=SC2086
    sample "$p-b" $b
    sleep $((SECS < 3 ? 1 : 3))
    smi_of >"$OUT/$p.smi" 2>&1
    wait_done $LIMIT "$p-a" "$p-b"
    echo "$p: a $(rate "$p-a") b $(rate "$p-b")" >>"$OUT/rates.txt"
}
if in_budget timeslice $LIMIT; then
    pair ts "" ""
    ra=$(rate ts-a) rb=$(rate ts-b)
    if [ -n "$ra" ] && [ -n "$rb" ] && grep -Eq ' C +.*gpumux-sample' "$OUT/ts.smi"; then
        result pass timeslice "two samples time-sliced: $ra + $rb billion interactions/s, type C in nvidia-smi"
    else
        result fail timeslice "rates '$ra' '$rb'; type C shown: $(grep -c ' C ' "$OUT/ts.smi")"
    fi
fi

if [ "$SIM" = 0 ] && ! command -v nvidia-cuda-mps-control >/dev/null; then
    result skip mps "nvidia-cuda-mps-control is not installed"
    result skip mps-split "nvidia-cuda-mps-control is not installed"
elif in_budget mps $((2 * LIMIT + 20)); then
    if gm mps start --gpu 0 >"$OUT/mps-start.log" 2>&1; then
        pair mps "" ""
        ra=$(rate mps-a) rb=$(rate mps-b)
        if [ -n "$ra" ] && [ -n "$rb" ] && grep -Eq 'M\+C +.*gpumux-sample' "$OUT/mps.smi" &&
            grep -q 'nvidia-cuda-mps-server' "$OUT/mps.smi"; then
            result pass mps "two samples under MPS: $ra + $rb billion interactions/s, M+C clients and the server shown"
        else
            result fail mps "rates '$ra' '$rb'; M+C shown: $(grep -c 'M+C' "$OUT/mps.smi"); server shown: $(grep -c mps-server "$OUT/mps.smi")"
        fi
        pair split "--compute 30" "--compute 70"
        ra=$(rate split-a) rb=$(rate split-b)
        if [ -n "$ra" ] && [ -n "$rb" ]; then
            result pass mps-split "MPS 30/70 active thread percentages: $ra + $rb billion interactions/s (share $(python3 -c "print(f'{100*$ra/($ra+$rb):.1f}')")/$(python3 -c "print(f'{100*$rb/($ra+$rb):.1f}')"))"
        else
            result fail mps-split "rates '$ra' '$rb'"
        fi
        gm mps stop --gpu 0 --force >>"$OUT/mps-start.log" 2>&1 || result fail mps-stop "$(tail -n 2 "$OUT/mps-start.log")"
    else
        result fail mps "gpumux mps start: $(tail -n 3 "$OUT/mps-start.log" | tr '\n' ' ')"
    fi
fi

# Limits enforced by libgpumux.so on the driver (GPU 0 is shared again by now).
if in_budget mem-sample 30; then
    # Three 30.5 MiB buffers do not fit in 64 MiB, the least limit gpumux takes.
    gm run memsmall --gpu 0 --memory 64M -- "$B/bin/gpumux-sample" -benchmark -i=1 -n=2000000 >/dev/null 2>>"$OUT/run-errors.log"
    wait_done 30 memsmall
    grep -q 'CUDA_ERROR_OUT_OF_MEMORY' "$OUT/memsmall.log" && result pass mem-sample "the sample is refused past a 64 MiB limit" ||
        result fail mem-sample "the sample under a 64 MiB limit: $(tail -n 3 "$OUT/memsmall.log" | tr '\n' ' ')"
fi

ALLOC=$B/tests/alloc_until_full
if [ ! -x "$ALLOC" ] && command -v nvcc >/dev/null; then
    nvcc -cudart static -o "$T/alloc_until_full" "$HERE/alloc_until_full.cu" >"$OUT/nvcc.log" 2>&1 &&
        ALLOC=$T/alloc_until_full
fi
if [ ! -x "$ALLOC" ]; then
    result skip mem-runtime "alloc_until_full is absent (no nvcc where the bundle was built, nor here)"
elif [ "$SIM" = 1 ]; then
    # NVIDIA's CUDA runtime starts by asking the driver for private tables (cuGetExportTable,
    # undocumented): gpusim implements the documented driver API only.
    result skip mem-runtime "the CUDA runtime needs the driver's private cuGetExportTable tables, which gpusim does not model"
elif in_budget mem-runtime 60; then
    gm run rtmem --gpu 0 --memory 512M -- "$ALLOC" >/dev/null 2>>"$OUT/run-errors.log"
    wait_done 60 rtmem
    if grep -q '^allocated 512 MiB' "$OUT/rtmem.log" && grep -q 'total 512 MiB' "$OUT/rtmem.log"; then
        result pass mem-runtime "CUDA runtime program stops at 512 MiB and cudaMemGetInfo reports the limit"
    else
        result fail mem-runtime "CUDA runtime program under 512 MiB: $(tr '\n' ' ' <"$OUT/rtmem.log" | head -c 300)"
    fi
fi

if in_budget caps $((3 * LIMIT)); then
    sample capsolo -- -n=16384
    wait_done $LIMIT capsolo
    sample cap30 --compute 30 -- -n=16384
    sample cap70 --compute 70 -- -n=16384
    wait_done $LIMIT cap30 cap70
    sample cap50 --compute 50 -- -n=16384
    wait_done $LIMIT cap50
    s=$(rate capsolo) a=$(rate cap30) b=$(rate cap70) c=$(rate cap50)
    if [ -n "$s" ] && [ -n "$a" ] && [ -n "$b" ] && [ -n "$c" ]; then
        shares=$(python3 -c "print(' '.join(f'{100*x/$s:.1f}' for x in ($a, $b, $c)))")
        if python3 -c "import sys; a,b,c=map(float,'$shares'.split()); sys.exit(0 if abs(a-30)<=5 and abs(b-70)<=5 and abs(c-50)<=5 else 1)"; then
            result pass caps "compute caps 30/70 together, 50 alone: $shares % of the solo rate $s"
        else
            result fail caps "compute caps 30/70 together, 50 alone: $shares % of the solo rate $s (want within 5 points)"
        fi
    else
        result fail caps "rates solo '$s' 30 '$a' 70 '$b' 50 '$c'"
    fi
fi

PROBE=$B/tests/gm-cumem-probe
if in_budget cumem 60; then
    gm run cumem --gpu 0 -- "$PROBE" 256 >/dev/null 2>>"$OUT/run-errors.log"
    wait_done 30 cumem
    gm run cumemcap --gpu 0 --memory 128M -- "$PROBE" 256 >/dev/null 2>>"$OUT/run-errors.log"
    wait_done 30 cumemcap
    if grep -q '^done' "$OUT/cumem.log"; then
        result pass cumem "cuMemCreate probe of 256 MiB ran (cumem.log); under --memory 128M: $(sed -n 's/^step create *rc \([0-9]*\).*/create rc \1/p' "$OUT/cumemcap.log")"
        sed 's/^/unlimited: /' "$OUT/cumem.log" | while read -r l; do note "$l"; done
        sed 's/^/128M limit: /' "$OUT/cumemcap.log" | while read -r l; do note "$l"; done
    else
        result fail cumem "the probe did not finish: $(tr '\n' ' ' <"$OUT/cumem.log" | head -c 300)"
    fi
fi

if ! python3 -c "import torch; assert torch.cuda.is_available()" >/dev/null 2>&1; then
    result skip torch "PyTorch with CUDA is not importable here"
elif in_budget torch 120; then
    gm run torchfree --gpu 0 -- python3 "$HERE/torch_matmul.py" 10 >/dev/null 2>>"$OUT/run-errors.log"
    wait_done 120 torchfree
    gm run torchcap --gpu 0 --compute 50 --memory 2G -- python3 "$HERE/torch_matmul.py" 10 >/dev/null 2>>"$OUT/run-errors.log"
    wait_done 120 torchcap
    note "PyTorch uncapped: $(tr '\n' ' ' <"$OUT/torchfree.log")"
    note "PyTorch at 50% and 2 GiB: $(tr '\n' ' ' <"$OUT/torchcap.log")"
    grep -Eq 'held (1[0-9]{3}|20[0-4][0-9]) MiB' "$OUT/torchcap.log" &&
        result pass torch "PyTorch held at most 2 GiB: $(grep -o 'held [0-9]* MiB' "$OUT/torchcap.log")" ||
        result fail torch "PyTorch under 2 GiB: $(tr '\n' ' ' <"$OUT/torchcap.log" | head -c 300)"
fi

echo "# $PASSES passed, $FAILS failed, $SKIPS skipped in $(($(date +%s) - START)) s" | tee -a "$RES"
[ "$FAILS" -eq 0 ]
