#!/usr/bin/env bash
# The walk-through of `make demo`: the seed's experiment (two n-body samples on one GPU,
# time-sliced, then under MPS, then at 30% and 70%), placement, and VM claims, driven through
# the gpumux CLI against a gpumuxd in a temporary directory, on gpusim or on a real GPU.
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
D=$(mktemp -d /tmp/gpumux-demo.XXXXXX)
chmod 0755 "$D"
export GPUMUX_SOCKET="$D/run/gpumux.sock"
# Inherited by the daemon and so by every workload (gpumuxd passes on its environment but
# GPUMUX_*, which it sets itself): the cleanup finds them by it.
export GM_DEMO_TAG="$D"
# The demo's launches get their cgroups under a parent of its own, removed at the end.
CGROOT=none
if [ "$(id -u)" = 0 ] &&
    awk '/ - cgroup2 / || / - cgroup .*[ ,](pids|freezer)(,|$)/ {f = 1} END {exit !f}' \
        /proc/self/mountinfo; then
    CGROOT="gpumux-demo/${D##*/}"
fi
DRIVER=${GPUMUX_DRIVER:-auto}
SECONDS_PER_PHASE=${GPUMUX_DEMO_SECONDS:-6}
SAMPLE="$B/bin/gpumux-sample"

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
# The processes that carry the demo's tag, but this scan and the shells it runs under.
tagged() {
    python3 - "GM_DEMO_TAG=$D" <<'PY'
import os, sys
tag = sys.argv[1].encode()
mine, p = set(), os.getpid()
while p > 1:
    mine.add(p)
    try:
        p = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        break
for d in os.listdir("/proc"):
    if d.isdigit() and int(d) not in mine:
        try:
            env = open(f"/proc/{d}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{d}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in env:
            print(d, cmd.strip())
PY
}
cleanup() {
    local rc=$?
    # The demo's workloads are stopped through the daemon, as a user would stop them (they
    # outlive the daemon by design), then MPS, then the daemon.
    if [ -n "${DPID:-}" ] && kill -0 "$DPID" 2>/dev/null; then
        local names
        names=$("$B/bin/gpumux" ps -o json 2>/dev/null | python3 -c \
            "import json,sys; print(' '.join(w['name'] for w in json.load(sys.stdin)['workloads'] if w['state'] in ('running','starting')))" 2>/dev/null || true)
        for n in $names; do "$B/bin/gpumux" stop "$n" >/dev/null 2>&1 || true; done
        for _ in $(seq 1 50); do
            "$B/bin/gpumux" ps -o json 2>/dev/null | python3 -c \
                "import json,sys; sys.exit(any(w['state'] in ('running','starting','stopping') for w in json.load(sys.stdin)['workloads']))" \
                2>/dev/null && break
            sleep 0.1
        done
    fi
    "$B/bin/gpumux" mps stop --force >/dev/null 2>&1 || true
    [ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    # Whatever still carries the tag (a workload the daemon could not stop) is killed, and the
    # demo fails if anything is left after that.
    local left pid _cmd
    left=$(tagged)
    if [ -n "$left" ]; then
        while read -r pid _cmd; do kill -9 "$pid" 2>/dev/null; done <<<"$left"
        sleep 0.3
        left=$(tagged)
    fi
    # The cgroups, as the daemon said where they are.
    local cg
    cg=$(sed -n 's/.*runs in its own cgroup under \(.*\) (.*/\1/p' "$D/daemon.log" 2>/dev/null | head -n1)
    if [ -n "$cg" ] && [ "$CGROOT" != none ]; then
        sleep 0.2
        find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
    rm -rf "$D"
    if [ -n "$left" ]; then
        echo "demo: these processes it started are still running:" >&2
        echo "$left" >&2
        exit 1
    fi
    [ "$rc" = 0 ] && echo "Every process the demo started has ended."
    exit "$rc"
}
trap cleanup EXIT
gm() { "$B/bin/gpumux" "$@"; }
state() { gm ps -o json | python3 -c "import json,sys; print([w['state'] for w in json.load(sys.stdin)['workloads'] if w['name']=='$1'][0])"; }
wait_done() { for n in "$@"; do while [ "$(state "$n")" = running ] || [ "$(state "$n")" = starting ]; do sleep 0.2; done; done; }
rate() { gm logs "$1" | sed -n 's/^= \([0-9.]*\) billion interactions per second/\1/p' | tail -n1; }
PATH="$B/bin:$PATH"

mkdir -p "$D/state" "$D/run"
"$B/bin/gpumuxd" --driver "$DRIVER" --state-dir "$D/state" --run-dir "$D/run" \
    --log-dir "$D/logs" --cgroup-root "$CGROOT" --gpusim-state "$D/run/gpusim.state" \
    --stop-timeout 2 >"$D/daemon.log" 2>&1 &
DPID=$!
for _ in $(seq 1 100); do gm info >/dev/null 2>&1 && break; sleep 0.1; done
echo "gpumuxd runs in $D (log: $D/daemon.log):"
sed -n '1,4p' "$D/daemon.log"

run gpumux smi
run gpumux gpu ls

bold "# 1. Two n-body samples time-sliced on GPU 0 (the seed's run without MPS)"
run gpumux run cuda-sample1 --gpu 0 -- "$SAMPLE" -benchmark -t="$SECONDS_PER_PHASE"
run gpumux run cuda-sample2 --env NVIDIA_VISIBLE_DEVICES=0 -- "$SAMPLE" -benchmark -t="$SECONDS_PER_PHASE"
sleep 2
run gpumux smi
wait_done cuda-sample1 cuda-sample2
run gpumux logs cuda-sample1
ts1=$(rate cuda-sample1) ts2=$(rate cuda-sample2)

bold "# 2. The same under MPS"
run gpumux mps start --gpu 0
run gpumux run mps-sample1 --gpu 0 -- "$SAMPLE" -benchmark -t="$SECONDS_PER_PHASE"
run gpumux run mps-sample2 --gpu 0 -- "$SAMPLE" -benchmark -t="$SECONDS_PER_PHASE"
sleep 2
run gpumux smi
wait_done mps-sample1 mps-sample2
mps1=$(rate mps-sample1) mps2=$(rate mps-sample2)

bold "# 3. Under MPS with CUDA_MPS_ACTIVE_THREAD_PERCENTAGE 30 and 70"
run gpumux run split30 --gpu 0 --compute 30 -- "$SAMPLE" -benchmark -t="$SECONDS_PER_PHASE"
run gpumux run split70 --gpu 0 --env CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=70 -- "$SAMPLE" -benchmark -t="$SECONDS_PER_PHASE"
sleep 1
run gpumux mps status
wait_done split30 split70
s30=$(rate split30) s70=$(rate split70)

bold "# Interactions per second (billions), each sample of the pair"
printf '%-28s %10s %10s %10s\n' phase "sample 1" "sample 2" "sum"
row() { printf '%-28s %10s %10s %10s\n' "$1" "$2" "$3" "$(python3 -c "print(f'{$2+$3:.1f}')" 2>/dev/null || echo -)"; }
row "time-sliced" "$ts1" "$ts2"
row "MPS" "$mps1" "$mps2"
row "MPS 30% / 70%" "$s30" "$s70"
echo "(on gpusim these figures come from the simulator's model, not from hardware: docs/gpusim.md)"

bold "# 4. Placement, limits and VM claims"
run gpumux mps stop --gpu 0
run gpumux run trainer --memory 6G --compute 70 -- sleep 600
run gpumux run notebook --memory 4G --compute 30 -- sleep 600
run gpumux ps
echo "# A VM asks for the GPU the limited workloads use: refused, with the reason."
g=$(gm ps -o json | python3 -c "import json,sys; print([w['gpus'][0]['index'] for w in json.load(sys.stdin)['workloads'] if w['name']=='trainer'][0])")
run gpumux vm attach vm1 --gpu "$g" || true
other=$((1 - g))
run gpumux vm attach vm1 --gpu "$other"
echo "# Now a workload that asks for the VM's GPU is refused:"
run gpumux run intruder --gpu "$other" -- sleep 1 || true
echo "# And one that asks for 20 GiB on a 15109 MiB T4:"
run gpumux run hungry --memory 20G -- sleep 1 || true
run gpumux vm ls
run gpumux smi
bold "Demo done."
