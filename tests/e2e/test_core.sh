#!/usr/bin/env bash
# The daemon's core: mode changes with many workloads, and reads that never wait behind slow
# operations (the global lock guards records and decisions only).
# shellcheck source=tests/e2e/lib.sh
. "$(dirname "$0")/lib.sh"

# The MPS control daemon of gpusim takes 3 s to start: a slow helper program.
export GPUSIM_MPS_START_DELAY_MS=3000
start_daemon || exit 1

# ---- 20 workloads with 60-character names survive --restart-workloads ----------------------
names=()
for i in $(seq -w 1 20); do
    n="workload-with-a-rather-long-descriptive-name-number-$i-abcdef"
    names+=("$n")
    gm run "$n" --gpu 0 -- sleep 600 >/dev/null || fail "run $n"
done
[ "${#names[0]}" -ge 60 ] || fail "names are ${#names[0]} characters"
running() { gm ps -o json | json_get "sum(1 for w in d['workloads'] if w['state']=='running')"; }
wait_for "20 running" 10 test "$(running)" = 20

# While the mode change waits for the slow MPS start, ps and smi answer.
gm gpu mode 0 mps --restart-workloads >"$T/mode.out" 2>&1 &
mode_pid=$!
# The workloads stop first; then the MPS start begins with its pipe directory.
uuid0=$(gm gpu ls -o json | json_get "[g['uuid'] for g in d['gpus'] if g['index']==0][0]")
wait_for "the MPS start began" 10 test -d "$T/run/mps/$uuid0/pipe"
answered=0 slow=0
for i in $(seq 1 10); do
    t0=$(date +%s%N)
    gm ps -o json >/dev/null || fail "ps during the mode change"
    t1=$(date +%s%N)
    ms=$(((t1 - t0) / 1000000))
    [ "$ms" -gt 1000 ] && slow=$((slow + 1))
    if kill -0 "$mode_pid" 2>/dev/null; then answered=$((answered + 1)); fi
    sleep 0.1
done
[ "$answered" -ge 5 ] && pass "ps answered $answered times while the mode change ran" ||
    fail "ps answered only $answered times while the mode change ran"
[ "$slow" -eq 0 ] && pass "no ps waited a second behind the mode change" ||
    fail "$slow ps calls took over a second"
gm smi >/dev/null && pass "smi answers too" || fail "smi during the mode change"
# A second change of the same GPU is refused while the first runs.
if kill -0 "$mode_pid" 2>/dev/null; then
    expect "a second mode change of the GPU is refused meanwhile" 1 'changing its mode now' -- \
        gm gpu mode 0 shared
    expect "placement keeps off the GPU meanwhile" 1 'changing its sharing mode' -- \
        gm run newcomer --gpu 0 -- sleep 5
else
    fail "the mode change ended before the checks (it should wait 3 s for MPS)"
fi
wait "$mode_pid"
rc=$?
[ "$rc" = 0 ] && pass "mode change with --restart-workloads" || fail "mode change: $(cat "$T/mode.out")"
grep -q "could not start again" "$T/mode.out" && fail "some did not restart: $(cat "$T/mode.out")"
restarted=$(grep -c '^Restarted workload ' "$T/mode.out")
[ "$restarted" = 20 ] && pass "all 20 restarted" || fail "$restarted restarted: $(cat "$T/mode.out")"
wait_for "20 running again under mps" 10 test "$(running)" = 20
for n in "${names[@]}"; do
    gm logs "$n" >/dev/null 2>&1 || fail "workload $n is gone"
done
mode=$(gm gpu ls -o json | json_get "[g['mode'] for g in d['gpus'] if g['index']==0][0]")
[ "$mode" = mps ] && pass "GPU 0 is in mps mode" || fail "GPU 0 mode $mode"

# ---- a stop that waits for a workload ignoring SIGTERM does not hold up reads ---------------
gm run stubborn --gpu 1 -- sh -c 'trap "" TERM; while :; do sleep 0.1; done' >/dev/null
wait_for "stubborn runs" 5 is_state stubborn running
gm gpu mode 1 mps --stop-workloads >"$T/mode1.out" 2>&1 &
mode_pid=$!
wait_for "stubborn is stopping" 5 is_state stubborn stopping
t0=$(date +%s%N)
gm ps -o json >/dev/null
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
if kill -0 "$mode_pid" 2>/dev/null; then
    [ "$ms" -lt 1000 ] && pass "ps answered in ${ms} ms while a stop waited for SIGKILL" ||
        fail "ps took ${ms} ms while a stop waited"
else
    fail "the stop ended before SIGKILL was due"
fi
wait "$mode_pid" && pass "mode change after SIGKILL" || fail "$(cat "$T/mode1.out")"
[ "$(state_of stubborn)" = stopped ] && pass "stubborn stopped" || fail "stubborn $(state_of stubborn)"

# ---- the daemon restarts with everything in place --------------------------------------------
kill9_daemon
start_daemon || exit 1
wait_for "20 re-adopted" 10 test "$(running)" = 20
finish
