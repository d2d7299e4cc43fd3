#!/usr/bin/env bash
# Limits through gpumuxd: the daemon creates each limited workload's region and preloads
# libgpumux.so; memory past the limit fails inside the workload; two saturating samples capped
# at 30 and 70 on one time-sliced GPU get 30±2 and 70±2 percent of it, with small kernels and
# with the sample's default 8 ms ones; `gpumux set` changes a
# running workload's limits within a second.
. "$(dirname "$0")/lib.sh"
SAMPLE="$B/bin/gpumux-sample"
[ -e "$B/lib/libgpumux.so" ] || { echo "skip: libgpumux.so is not built"; exit 77; }
if nm -D "$SAMPLE" 2>/dev/null | grep -q __asan_init; then
    # The plain interposer cannot be preloaded ahead of ASan into an instrumented sample
    # (ASan's start-up resolves through the interposer's dlsym); the plain build runs this test.
    echo "skip: sanitizer build: workloads cannot run under the preloaded interposer here"
    exit 77
fi
start_daemon || exit 1
rate() { gm logs "$1" | sed -n 's/^= \([0-9.]*\) billion interactions per second/\1/p' | tail -n1; }

# Memory: three 30.5 MiB buffers (2,000,000 bodies) do not fit in 64 MiB, the least limit.
gm run small --gpu 1 --memory 64M -- "$SAMPLE" -benchmark -i=1 -n=2000000 >/dev/null
wait_for "small ends" 10 is_state small exited
expect "allocation past the limit fails in the workload" 0 'cuMemAlloc\([0-9]+ bytes\): CUDA_ERROR_OUT_OF_MEMORY' -- gm logs small
code=$(gm ps -o json | json_get "[w['exit_code'] for w in d['workloads'] if w['name']=='small'][0]")
[ "$code" = 1 ] && pass "the sample reported the refusal and exited 1" || fail "exit code $code"
[ -f "$T/run/regions/small.region" ] && pass "region created in the run directory" || fail "no region"
mode=$(stat -c %a "$T/run/regions/small.region")
[ "$mode" = 644 ] && pass "usage part mode 0644" || fail "usage part mode $mode"
mode=$(stat -c %a:%u "$T/run/regions/small.limits")
[ "$mode" = "644:$(id -u)" ] && pass "limits part mode 0644, the daemon's" || fail "limits part $mode"

# Compute: a solo baseline, then 30/70 together on GPU 1 (time-sliced).
gm run solo --gpu 1 -- "$SAMPLE" -benchmark -n=8192 -t=4 >/dev/null
wait_for "solo ends" 20 is_state solo exited
solo=$(rate solo)
gm run c30 --gpu 1 --compute 30 -- "$SAMPLE" -benchmark -n=8192 -t=8 >/dev/null
gm run c70 --gpu 1 --compute 70 -- "$SAMPLE" -benchmark -n=8192 -t=8 >/dev/null
# Each capped workload's limits part names the other (the peer whose work it waits for).
name_each_other() { grep -aq c70 "$T/run/regions/c30.limits" && grep -aq c30 "$T/run/regions/c70.limits"; }
wait_for "the two regions name each other as peers" 5 name_each_other &&
    pass "the two regions name each other as peers"
wait_for "c30 ends" 30 is_state c30 exited
wait_for "c70 ends" 30 is_state c70 exited
# shares SOLO A B: the pair's shares of the GPU, within 2 points of 30 and 70.
shares() {
    python3 - "$@" <<'PY'
import sys
solo, a, b = map(float, sys.argv[1:])
# Windows that add up to the whole period leave the GPU no idle time, so the pair's sum is the
# GPU's throughput too; the larger of the two is the baseline (a solo run on a loaded machine
# comes out low). The pair must still have had the GPU to itself: its sum within 15% of solo.
base = max(solo, a + b)
if a + b < 0.85 * solo:
    print(f"the pair made {a + b:.1f} of the solo {solo:.1f}: the machine was too busy", file=sys.stderr)
    sys.exit(1)
sa, sb = 100 * a / base, 100 * b / base
print(f"shares {sa:.1f}% and {sb:.1f}%", file=sys.stderr)
sys.exit(0 if abs(sa - 30) <= 2 and abs(sb - 70) <= 2 else 1)
PY
}
r30=$(rate c30) r70=$(rate c70)
log "solo $solo, capped 30: $r30, capped 70: $r70 (billion interactions/s)"
shares "$solo" "$r30" "$r70" && pass "30/70 caps hold within 2 points" || fail "caps: solo $solo 30:$r30 70:$r70"

# The sample at its default size (40960 bodies, 8 ms kernels on the simulated T4): gpusim's
# throughput does not depend on the body count, so the same solo run is the baseline.
gm run d30 --gpu 1 --compute 30 -- "$SAMPLE" -benchmark -t=8 >/dev/null
gm run d70 --gpu 1 --compute 70 -- "$SAMPLE" -benchmark -t=8 >/dev/null
wait_for "d30 ends" 30 is_state d30 exited
wait_for "d70 ends" 30 is_state d70 exited
r30=$(rate d30) r70=$(rate d70)
log "default size: capped 30: $r30, capped 70: $r70 (billion interactions/s)"
shares "$solo" "$r30" "$r70" && pass "30/70 caps hold within 2 points with 8 ms kernels" ||
    fail "caps with 8 ms kernels: solo $solo 30:$r30 70:$r70"

# gpumux set: the region of a running workload changes within a second.
gm run live --gpu 1 --compute 20 --memory 1G -- sleep 300 >/dev/null
wait_for "live running" 5 is_state live running
region_limits() {
    local o
    o=$("$B/tests/gm-region-show" "$T/run/regions/live.region") || return 1
    echo $o
}
expect "region holds the limits" 0 'memory_limit 1073741824 compute_pct 20 ' -- region_limits
expect "set" 0 'Limits of live changed while it runs: compute 40%, memory 2GiB' -- \
    gm set live --compute 40 --memory 2G
limits_are() { region_limits | grep -q "$1"; }
wait_for "the region takes the new limits" 1 limits_are 'memory_limit 2147483648 compute_pct 40 ' &&
    pass "region holds the new limits within a second"
gm run other --gpu 1 --memory 10G -- sleep 300 >/dev/null
expect "set more memory than is left" 1 'left for limits' -- gm set live --memory 6G
expect "set out of range" 1 'compute: 0 is out of range' -- gm set live --compute 0
expect "limits recorded" 0 '"memory_limit": 2147483648' -- gm ps -o json
finish
