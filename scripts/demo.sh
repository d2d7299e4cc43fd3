#!/usr/bin/env bash
# The walk-through of `make demo`: a gpumuxd on gpusim (or on the real driver when one reports a
# GPU) in a temporary directory, driven through the gpumux CLI as a user would.
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
D=$(mktemp -d /tmp/gpumux-demo.XXXXXX)
export GPUMUX_SOCKET="$D/run/gpumux.sock"
export GPUMUX_DEMO_TAG="$D"
DRIVER=${GPUMUX_DRIVER:-auto}

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }
cleanup() {
    [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    # Workloads outlive the daemon by design; the demo's own are ended here.
    for p in /proc/[0-9]*; do
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "GPUMUX_DEMO_TAG=$D" &&
            kill -9 "${p#/proc/}" 2>/dev/null
    done
    rm -rf "$D"
}
trap cleanup EXIT

mkdir -p "$D/state" "$D/run"
"$B/bin/gpumuxd" --driver "$DRIVER" --state-dir "$D/state" --run-dir "$D/run" \
    --gpusim-state "$D/run/gpusim.state" --stop-timeout 2 >"$D/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do "$B/bin/gpumux" info >/dev/null 2>&1 && break; sleep 0.1; done
gm() { "$B/bin/gpumux" "$@"; }
PATH="$B/bin:$PATH"

echo "gpumuxd runs in $D (log: $D/daemon.log):"
sed -n '1,4p' "$D/daemon.log"

run gpumux smi
run gpumux smi --query-gpu=index,name,uuid,pci.bus_id,memory.total,memory.used,compute_mode --format=csv
run gpumux gpu ls

echo; echo "# Workloads: two whole-GPU samples time-sliced on GPU 0, and two with limits placed by bin-packing."
run gpumux run cuda-sample1 --gpu 0 -- sh -c 'echo "sample1 sees $NVIDIA_VISIBLE_DEVICES"; exec sleep 600'
run gpumux run cuda-sample2 --env NVIDIA_VISIBLE_DEVICES=0 -- sh -c 'echo "sample2 sees $NVIDIA_VISIBLE_DEVICES"; exec sleep 600'
run gpumux run trainer --memory 6G --compute 70 -- sleep 600
run gpumux run notebook --memory 4G --compute 30 -- sleep 600
run gpumux ps
run gpumux logs cuda-sample1
run gpumux smi

echo; echo "# A VM asks for GPU 0, which containers use: refused, with the reason."
run gpumux vm attach vm1 --gpu 0 || true
echo; echo "# GPU 1 is free of workloads once the limited ones leave; the VM takes it."
gpu_of() { gm ps -o json | python3 -c "import json,sys; print([w['gpus'][0]['index'] for w in json.load(sys.stdin)['workloads'] if w['name']=='$1'][0])"; }
echo "(trainer is on GPU $(gpu_of trainer), notebook on GPU $(gpu_of notebook))"
run gpumux delete trainer notebook
run gpumux vm attach vm1 --gpu 1
run gpumux vm ls
echo; echo "# Now a workload that asks for GPU 1 is refused: the VM holds it."
run gpumux run intruder --gpu 1 -- sleep 1 || true
echo; echo "# And one that asks for 20 GiB on a 15109 MiB T4:"
run gpumux run hungry --memory 20G -- sleep 1 || true
echo; echo "# Changing GPU 0 to MPS while samples run would break them:"
run gpumux gpu mode 0 mps || true
run gpumux gpu ls
run gpumux events
echo; echo "Demo done."
