#!/usr/bin/env bash
# The daemon survives a broken simulated device. gpusim's state file is world-writable (every
# user's workloads take part in the simulation), so any user can truncate it or fill it with
# garbage while gpumuxd runs. The daemon must neither die (a mapping of a truncated file faults
# with SIGBUS) nor believe what it reads: it reports the GPUs as lost, logs that once, keeps
# answering the API, and uses the device again once the file is whole.
. "$(dirname "$0")/lib.sh"

ensure_test_users
if have_users; then
    attacker() { as_other "$@"; }
    log "the damage is done by gpumux-other, a user with no group of ours"
else
    attacker() { "$@"; }
    log "skipping the other-user part (needs root and the test users): damaging as $(id -un)"
fi

start_daemon || exit 1
gm run keep -- sleep 300 >/dev/null || fail "run keep"
wait_for "keep running" 10 is_state keep running
# Nothing maps and locks the state during this test (the daemon reads it through its private
# view and no workload uses CUDA), so this copy is a consistent device to restore.
cp "$GPUSIM_STATE" "$T/state.good"
size=$(stat -c %s "$GPUSIM_STATE")
lost_lines() { grep -c "the GPU is reported as lost" "$T/daemon.log"; }

still_serving() { # WHAT LOST: the daemon is alive, answers, and shows the GPUs LOST (0,1 or 1)
    local what=$1 lost=$2 out want
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
        fail "$what: gpumuxd died"; tail -n 5 "$T/daemon.log" >&2; return
    fi
    pass "$what: gpumuxd is alive"
    expect "$what: ps answers" 0 "keep +.*running" -- gm ps
    expect "$what: smi shows the GPUs as lost" 0 "LOST: GPU ${lost: -1}: .*GPU is lost" -- gm smi
    expect "$what: info lists the lost GPUs" 0 "GPU ${lost:0:1} lost: .*GPU is lost" -- gm info
    out=$(gm smi -o json | json_get "[(g['present'], g['error'] is not None) for g in d['gpus']]")
    want="[(False, True), (False, True)]"
    [ "$lost" = 1 ] && want="[(True, False), (False, True)]"
    if [ "$out" = "$want" ]; then
        pass "$what: the API says present false, with the error"
    else
        fail "$what: GET /v1/gpus gives (present, error): $out"
    fi
}

restored() { # WHAT
    local what=$1
    cat "$T/state.good" >"$GPUSIM_STATE" # the same file, as a user would put it back
    expect "$what, restored: smi shows no lost GPU" 0 "Tesla T4" -- gm smi
    if gm smi | grep -q LOST || gm info | grep -q lost; then
        fail "$what, restored: a GPU is still shown as lost"
    else
        pass "$what, restored: the GPUs read again"
    fi
}

lost_total=0
damage() { # WHAT LOST COMMAND...: the attacker's command, then the checks
    local what=$1 lost=$2
    shift 2
    if ! attacker "$@"; then
        fail "$what: the attack itself failed (is the state file reachable?)"
        return
    fi
    lost_total=$((lost_total + (${#lost} + 1) / 2))
    still_serving "$what" "$lost"
    gm smi >/dev/null
    gm info >/dev/null # asked again: the log must not grow
    restored "$what"
}

damage "truncated to 0" 0,1 truncate -s 0 "$GPUSIM_STATE"
damage "truncated to half" 0,1 truncate -s $((size / 2)) "$GPUSIM_STATE"
damage "garbage" 0,1 dd if=/dev/urandom of="$GPUSIM_STATE" bs="$size" count=1 conv=notrunc status=none
# From 16 KiB on: the header and GPU 0's table (one process) left whole, GPU 1 scribbled over
# (counts, sizes and strings out of range, its static part changed). GPU 0 must still read.
damage "garbage after GPU 0" 1 dd if=/dev/urandom of="$GPUSIM_STATE" bs=4096 seek=4 \
    count=$(((size - 16384) / 4096)) conv=notrunc status=none
damage "grown" 0,1 truncate -s $((size * 2)) "$GPUSIM_STATE"

# Once per GPU and episode, however often it was asked meanwhile.
n=$(lost_lines)
if [ "$n" = "$lost_total" ]; then
    pass "the damage was logged once per GPU and episode ($n lines)"
else
    fail "expected $lost_total 'reported as lost' lines in the log, found $n"
fi
if grep -q "GPU 0: reads again" "$T/daemon.log"; then
    pass "the recovery was logged"
else
    fail "no 'reads again' line in the log"
fi
expect "the daemon still works: stop" 0 "" -- gm stop keep
kill -0 "$DAEMON_PID" 2>/dev/null && pass "gpumuxd is alive at the end" || fail "gpumuxd died"
finish
