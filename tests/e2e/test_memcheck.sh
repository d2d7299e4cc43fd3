#!/usr/bin/env bash
# Limits a workload cannot lift. A workload that maps its own region and writes memory_limit=0
# fails to write (the limits file is the daemon's, mapped read-only) and then cannot allocate
# 4096 MiB under its 64 MiB limit. A workload that sheds the interposer and allocates with the
# driver alone is seen by the daemon's memory check (NVML, per process): `ps` flags it and one
# event names it, also when it allocates from a process that left the workload's session and was
# reparented; with --enforce strict it is stopped, with the reason.
. "$(dirname "$0")/lib.sh"
ALLOC="$B/tests/gm-alloc"
[ -e "$B/lib/libgpumux.so" ] || { echo "skip: libgpumux.so is not built"; exit 77; }
# gm-alloc is plain in every build (as the interposer is), so this runs under the sanitizers too.
if nm -D "$ALLOC" 2>/dev/null | grep -q __asan_init; then
    echo "skip: an instrumented gm-alloc cannot run under the preloaded interposer"
    exit 77
fi
ensure_test_users
start_daemon || exit 1
# The attacker runs as a user of its own when the test users exist (a root workload can do
# anything, its limits included: only the driver's check holds it).
run_as=gm
have_users && run_as=gm_member
json_of() { gm ps -o json | json_get "[w['$2'] for w in d['workloads'] if w['name']=='$1'][0]"; }

# ---- the attack on the region ----
$run_as run attack --gpu 0 --memory 64M -- "$ALLOC" --attack 4096 0 >/dev/null
wait_for "attack ends" 10 is_state attack exited
out=$(gm logs attack)
if [ "$run_as" = gm_member ]; then
    grep -q "refused: open the limits file for writing (Permission denied)" <<<"$out" &&
        pass "the limits file cannot be opened for writing" || fail "open: $out"
    grep -q "refused: chmod the limits file 0666 (Operation not permitted)" <<<"$out" &&
        pass "its mode cannot be changed" || fail "chmod: $out"
    grep -q "refused: create a limits file of its own beside it (Permission denied)" <<<"$out" &&
        pass "no limits file of its own can be put in place" || fail "plant: $out"
    grep -q "refused: remove the limits file (Permission denied)" <<<"$out" &&
        pass "the limits file cannot be removed" || fail "unlink: $out"
    owner=$(stat -c %U:%a "$T/run/regions/attack.region")
    [ "$owner" = gpumux-member:644 ] && pass "the usage part is the workload's user's, mode 0644" ||
        fail "usage part $owner"
fi
grep -q "refused: mprotect the limits page writable (Permission denied)" <<<"$out" &&
    pass "mprotect cannot make the limits writable" || fail "mprotect: $out"
grep -q "refused: store memory_limit=0 in the mapped region (SIGSEGV)" <<<"$out" &&
    pass "storing memory_limit=0 faults" || fail "store: $out"
grep -q "refused: store compute_pct=0 in the mapped region (SIGSEGV)" <<<"$out" &&
    pass "storing compute_pct=0 faults" || fail "store: $out"
grep -q "ATTACK SUCCEEDED" <<<"$out" && fail "an attack went through: $out"
grep -q "memory_limit is 67108864 bytes" <<<"$out" && pass "the limit is still 64 MiB" ||
    fail "limit: $out"
grep -Eq "cuMemAlloc\(4096 MiB\): CUDA_ERROR_OUT_OF_MEMORY" <<<"$out" &&
    pass "4096 MiB under a 64 MiB limit fails in the interposer" || fail "alloc: $out"
[ "$(json_of attack exit_code)" = 1 ] && pass "it exited 1 (refused)" ||
    fail "exit code $(json_of attack exit_code)"
mode=$(stat -c %a:%u "$T/run/regions/attack.limits")
[ "$mode" = "644:$(id -u)" ] && pass "the limits file is the daemon's, mode 0644" ||
    fail "limits file $mode"
gm delete attack >/dev/null
[ ! -e "$T/run/regions/attack.limits" ] && [ ! -e "$T/run/regions/attack.region" ] &&
    pass "delete removes both files of the region" || fail "region files left: $(ls "$T/run/regions")"

# ---- the bypass: no interposer, the driver's check ----
$run_as run bare --gpu 0 --memory 64M -- "$ALLOC" --bare 4096 60 >/dev/null
wait_for "bare allocated" 10 bash -c "'$GPUMUX' logs bare | grep -q 'without the interposer: ok'"
over() { [ "$(json_of "$1" over_memory_limit)" = True ]; }
wait_for "the daemon flags bare over its limit" 5 over bare && pass "-o json: over_memory_limit"
used=$(json_of bare memory_used)
[ "$used" -ge $((4096 << 20)) ] 2>/dev/null && pass "-o json: memory_used $used, as the driver says" ||
    fail "memory_used $used"
expect "ps shows it over its limit" 0 'bare .*Up .*\(over memory limit\)' -- gm ps
ev='workload/bare .*over memory limit: uses [0-9]+ MiB of 64 MiB \(seen by the driver\)'
expect "an event names it" 0 "$ev" -- gm events
sleep 0.5 # ten polls more: still one event
n=$(gm events | grep -Ec "$ev")
[ "$n" = 1 ] && pass "one event per crossing, not per poll" || fail "$n events"
is_state bare running && pass "best-effort: it keeps running" || fail "bare: $(state_of bare)"
gm stop bare >/dev/null
wait_for "bare stops" 10 is_state bare stopped
[ "$(json_of bare over_memory_limit)" = False ] && pass "a stopped workload is not flagged" ||
    fail "still flagged"

# ---- a process that left the workload's session and was reparented: found by its launch lock ----
$run_as run escape --gpu 1 --memory 64M -- "$ALLOC" --bare --escape 4096 60 >/dev/null
wait_for "escape allocated" 10 bash -c "'$GPUMUX' logs escape | grep -q 'without the interposer: ok'"
wait_for "the daemon flags escape over its limit" 5 over escape &&
    pass "a reparented process in a session of its own is still counted"
expect "an event names escape" 0 'workload/escape .*over memory limit' -- gm events

# ---- under its limit: measured, not flagged ----
$run_as run fits --gpu 0 --memory 1G -- "$ALLOC" --bare 16 60 >/dev/null
wait_for "fits allocated" 10 bash -c "'$GPUMUX' logs fits | grep -q 'without the interposer: ok'"
wait_for "fits measured" 5 bash -c "[ \"\$('$GPUMUX' ps -o json | python3 -c \"import json,sys; print([w['memory_used'] for w in json.load(sys.stdin)['workloads'] if w['name']=='fits'][0])\")\" != None ]"
[ "$(json_of fits over_memory_limit)" = False ] && pass "under its limit: not flagged" ||
    fail "fits flagged"
gm events | grep -q "workload/fits .*over memory limit" && fail "an event for a workload within its limit"
gm stop fits >/dev/null

# ---- --enforce strict: stopped, with the reason ----
$run_as run strict --gpu 0 --memory 64M --enforce strict -- "$ALLOC" --bare 4096 60 >/dev/null
stopped() { s=$(state_of strict); [ "$s" = stopped ] || [ "$s" = exited ]; }
wait_for "strict is stopped" 10 stopped && pass "--enforce strict: stopped"
why='stopped \(--enforce strict\): over memory limit: uses [0-9]+ MiB of 64 MiB \(seen by the driver\)'
[ "$(json_of strict desired)" = stopped ] && pass "and it is not restarted" ||
    fail "desired $(json_of strict desired)"
expect "the stop is recorded with its reason" 0 "workload/strict .*$why" -- gm events
finish
