#!/usr/bin/env bash
# An NVML monitor the project never adapted to (tests/tools/nvml_monitor.py: ctypes over
# libnvidia-ml.so.1, as gpustat and nvitop are written), run by hand with nothing but gpusim's
# directory on its library path, sees the daemon's simulated GPUs and the workload running on
# them: gpumuxd and gpusim share one default state file. The test runs in a mount namespace of
# its own with a private /dev/shm, so that the machine's default device is neither used nor
# disturbed by the test.
set -u
if [ -z "${GM_NVML_NS:-}" ]; then
    if ! command -v unshare >/dev/null || [ "$(id -u)" != 0 ] || ! command -v python3 >/dev/null; then
        echo "skip: a private /dev/shm needs root and unshare (and the monitor python3)"
        exit 77
    fi
    exec unshare -m --propagation private env GM_NVML_NS=1 bash "$0" "$@"
fi
mount -t tmpfs -o mode=1777 gm-e2e-shm /dev/shm || {
    echo "FAIL: cannot mount a private /dev/shm"
    exit 1
}

. "$(dirname "$0")/lib.sh"
SRC=${GM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
SAMPLE="$B/bin/gpumux-sample"
MONITOR="$SRC/tests/tools/nvml_monitor.py"
SIMDIR=$(cd "$B/lib/gpusim" && pwd -P)

# The daemon with no gpusim_state at all: its default must be gpusim's.
GPUSIM_STATE=
start_daemon || exit 1
unset GPUSIM_STATE

expect "info names gpusim's default state file" 0 "gpusim state: +/dev/shm/gpumux-gpusim" -- \
    gm info
expect "info names gpusim's library directory" 0 "gpusim library: +$SIMDIR" -- gm info
expect "info gives the command line for NVML tools" 0 \
    "NVML tools: +LD_LIBRARY_PATH=$SIMDIR TOOL\$" -- gm info
expect "info -o json has the gpusim object" 0 '"default_state": true' -- gm info -o json
[ -e /dev/shm/gpumux-gpusim ] && pass "the simulated device lives in /dev/shm/gpumux-gpusim" ||
    fail "no /dev/shm/gpumux-gpusim after the daemon started"

gm run watched --gpu 1 -- "$SAMPLE" -benchmark -n=8192 -t=30 >/dev/null ||
    fail "gm run watched"
pid_of() { gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='watched'][0]"; }
wait_for "the workload runs" 10 is_state watched running
PID=$(pid_of)

# In the sanitizer build gpusim's libnvidia-ml.so is instrumented: a plain python3 can load it
# only with the sanitizer's runtime preloaded (and python's own allocations not leak-checked).
SANITIZER_ENV=()
if nm -D "$SIMDIR/libnvidia-ml.so.1" 2>/dev/null | grep -q __asan_init; then
    SANITIZER_ENV=(LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0)
fi

# monitor: the tool as a user runs it, in an environment that names no file of ours.
monitor() {
    env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH="$SIMDIR" "${SANITIZER_ENV[@]}" python3 "$MONITOR" \
        >"$T/mon.json" 2>"$T/mon.err"
}
sees_workload() {
    monitor && python3 - "$T/mon.json" "$PID" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); pid = int(sys.argv[2])
g = d["gpus"][1]
p = [x for x in g["processes"] if x["pid"] == pid]
v1 = [x for x in g["processes_v1"] if x["pid"] == pid]
s = [x for x in g["samples"] if x["pid"] == pid and x["sm"] > 0]
sys.exit(0 if p and p[0]["used_mib"] > 0 and v1 and s and g["utilization"] > 0 else 1)
EOF
}
if wait_for "the monitor sees the workload's process, memory and utilisation" 15 sees_workload; then
    pass "an NVML monitor with only LD_LIBRARY_PATH sees the workload on GPU 1"
else
    log "monitor said: $(cat "$T/mon.json" "$T/mon.err" 2>/dev/null)"
fi
got=$(json_get "' '.join([d['driver'], str(len(d['gpus'])), d['gpus'][0]['name']])" <"$T/mon.json")
want=$(gm smi -o json | json_get "' '.join([d['driver']['driver_version'], str(len(d['gpus'])), d['gpus'][0]['name']])")
[ -n "$got" ] && [ "$got" = "$want" ] && pass "the monitor and gpumux smi agree: $got" ||
    fail "the monitor saw '$got', gpumux smi '$want'"
name=$(json_get "[p['name'] for p in d['gpus'][1]['processes'] if p['pid']==$PID][0]" <"$T/mon.json")
case $name in
*gpumux-sample*) pass "the monitor names the process ($name)" ;;
*) fail "process name of $PID: '$name'" ;;
esac
uuid=$(json_get "d['gpus'][1]['uuid']" <"$T/mon.json")
gm ps -o json | grep -q "$uuid" && pass "the workload's GPU is the one the monitor lists ($uuid)" ||
    fail "gpumux ps does not name $uuid"

gm rm -f watched >/dev/null 2>&1 || gm stop watched >/dev/null 2>&1
finish
