#!/usr/bin/env bash
# Workload logs are bounded and cannot starve the state database: a workload that writes far
# more than the cap leaves at most log_max_size x (log_max_files + 1) bytes, `gpumux logs` shows
# its latest output across the rotated files, its exit is recorded, and the state directory does
# not grow; with the database and the logs on one small disk, flooding workloads cannot fill it.
# A workload whose background child keeps its output open still has its exit recorded promptly.
. "$(dirname "$0")/lib.sh"

MAX=65536
FILES=2
start_daemon --log-max-size 64K --log-max-files "$FILES" || exit 1

# The sizes of NAME's log files in DIR, one a line: "file size".
log_sizes() { (cd "$1" && for f in "$2".log "$2".log.[0-9] "$2".log.[0-9][0-9]; do [ -e "$f" ] && echo "$f $(stat -c %s "$f")"; done); }
# The kept log of NAME in DIR as it is on disk, oldest first.
kept_log() {
    local d=$1 n=$2 k
    for k in $(seq "$FILES" -1 1); do [ -f "$d/$n.log.$k" ] && cat "$d/$n.log.$k"; done
    cat "$d/$n.log"
}
exit_code_of() { gm ps -o json | json_get "[w['exit_code'] for w in d['workloads'] if w['name']=='$1'][0]"; }

state_before=$(du -sb "$T/state" | cut -f1)
expect "flood starts" 0 'flood' -- gm run flood -- \
    sh -c 'yes "the same line of output, over and over" | head -c 50000000; seq 1 2000; echo LAST-LINE'
wait_for "flood exits" 60 is_state flood exited
[ "$(exit_code_of flood)" = 0 ] && pass "flood's exit code 0 is recorded" ||
    fail "flood's exit code: $(exit_code_of flood)"

sizes=$(log_sizes "$T/logs" flood)
nfiles=$(wc -l <<<"$sizes")
total=$(awk '{ s += $2 } END { print s }' <<<"$sizes")
biggest=$(awk '$2 > m { m = $2 } END { print m }' <<<"$sizes")
[ "$nfiles" -eq $((FILES + 1)) ] && pass "the log and $FILES rotated files are kept" ||
    fail "log files of flood: $sizes"
[ "$biggest" -le "$MAX" ] && [ "$total" -le $((MAX * (FILES + 1))) ] &&
    pass "50 MB of output left $total bytes, no file over 64K" || fail "log sizes: $sizes"
[ ! -e "$T/logs/flood.log.$((FILES + 1))" ] && pass "no file beyond log_max_files" ||
    fail "flood.log.$((FILES + 1)) exists"

out=$(gm logs flood)
[ "$(tail -n 1 <<<"$out")" = LAST-LINE ] && pass "logs ends with the latest output" ||
    fail "logs ends with: $(tail -n 2 <<<"$out")"
grep -qx 1000 <<<"$out" && grep -qx 2000 <<<"$out" && pass "logs reads across the rotated files" ||
    fail "logs lacks lines of seq"
if [ "$(gm logs flood | md5sum)" = "$(kept_log "$T/logs" flood | md5sum)" ]; then
    pass "logs prints the rotated files oldest first, then the current one, byte for byte"
else
    fail "logs differs from the kept files ($(gm logs flood | wc -c) bytes)"
fi

state_after=$(du -sb "$T/state" | cut -f1)
[ ! -e "$T/state/logs" ] && [ $((state_after - state_before)) -lt 1048576 ] &&
    pass "the state directory did not grow with the log ($state_before -> $state_after)" ||
    fail "state directory grew from $state_before to $state_after bytes"

# Following a log while rotations remove its oldest file: every line once, in order (a position
# in the kept log alone would jump by a whole file at each such rotation).
gm run counter -- awk 'BEGIN { for (i = 1; i <= 60000; i++) { printf "%06d\n", i; fflush()
    if (i % 500 == 0) system("sleep 0.02") } }' >/dev/null || fail "run counter"
timeout 60 "$GPUMUX" logs -f counter >"$T/followed" 2>&1
if cmp -s "$T/followed" <(seq -f %06g 1 60000); then
    pass "logs -f printed all 60000 lines once, in order, across rotations"
else
    fail "logs -f of counter: $(wc -l <"$T/followed") lines, first difference: $(cmp "$T/followed" <(seq -f %06g 1 60000) 2>&1)"
fi
[ -e "$T/logs/counter.log.$FILES" ] && [ "$(cat "$T/logs/counter.log".* "$T/logs/counter.log" | wc -c)" -lt 420000 ] &&
    pass "the counter's oldest output was rotated away meanwhile" || fail "counter did not rotate"

# A background child keeps stdout open after the main process ended: the exit is recorded
# within a second or so, not when the child ends, and the output before it is in the log.
t0=$(date +%s%N)
expect "holder starts" 0 'holder' -- gm run holder -- sh -c '(sleep 60; echo late) & echo main-done; exit 4'
wait_for "holder's exit recorded while its child holds stdout" 5 is_state holder exited
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$ms" -lt 4000 ] && pass "holder's exit was recorded after $ms ms" || fail "holder took $ms ms"
[ "$(exit_code_of holder)" = 4 ] && pass "holder's exit code 4 is recorded" ||
    fail "holder's exit code: $(exit_code_of holder)"
expect "holder's output before the exit is kept" 0 '^main-done$' -- gm logs holder

# --since, as docker's: the output of the last DURATION, or since a UTC time, also across a
# rotation (each file's time index moves with it); with --tail, the last lines of that.
gm run stamped -- sh -c 'echo early; sleep 3; echo late-1; echo late-2; exec sleep 60' >/dev/null
wait_for "stamped wrote its late lines" 10 sh -c "'$GPUMUX' logs stamped | grep -q late-2"
expect "--since 2s leaves out the early line" 0 '^late-1$' -- gm logs --since 2s stamped
[ "$(gm logs --since 2s stamped | tr '\n' ' ')" = "late-1 late-2 " ] && pass "--since 2s: just the late lines" ||
    fail "--since 2s: $(gm logs --since 2s stamped | tr '\n' ' ')"
[ "$(gm logs --since 1h stamped | wc -l)" = 3 ] && pass "--since 1h: all of it" || fail "--since 1h"
expect "--since a UTC time" 0 '^early$' -- gm logs --since "$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)" stamped
expect "--since with --tail" 0 '^late-2$' -- gm logs --since 2s --tail 1 stamped
expect "--since in the future: nothing" 0 '^$' -- gm logs --since "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" stamped
expect "--since a bad value" 2 "--since 'soon': expected a duration" -- gm logs --since soon stamped
[ -f "$T/logs/stamped.log.t" ] && pass "the log's time index is beside it" || fail "no stamped.log.t"
# The counter's log rotated: its indexes moved with its files, and --since finds its last lines.
[ -f "$T/logs/counter.log.1.t" ] && pass "a rotated file keeps its index" || fail "no counter.log.1.t"
[ "$(gm logs --since 1h counter | wc -l)" = "$(gm logs counter | wc -l)" ] &&
    pass "--since 1h over rotated files: all that is kept" || fail "--since over rotated files"
expect "delete stamped" 0 '' -- gm delete stamped
[ ! -e "$T/logs/stamped.log.t" ] && pass "delete removed the index too" || fail "stamped.log.t left"

# Delete removes every file of the log.
expect "delete flood" 0 '' -- gm delete flood
left=$(ls "$T/logs" | grep '^flood\.log' || true)
[ -z "$left" ] && pass "delete removed flood.log and its rotated files" || fail "left: $left"
stop_daemon

# The worst case: database and logs on one 8 MB disk. Two workloads write 50 MB each; with a
# cap of 1M x 3 per workload the disk keeps room, and the daemon still records, runs and
# deletes.
D="$T/disk"
mkdir -p "$D"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=8m tmpfs "$D" 2>/dev/null; then
    trap 'kill_tagged KILL; sleep 0.2; umount -l "$D" 2>/dev/null; cleanup' EXIT
    mkdir -p "$D/state"
    start_daemon --state-dir "$D/state" --log-dir "$D/logs" --log-max-size 1M \
        --log-max-files 2 || exit 1
    for n in fa fb; do
        gm run "$n" -- sh -c 'yes "output that would fill the disk" | head -c 50000000; echo END' \
            >/dev/null || fail "run $n"
    done
    both_exited() { is_state fa exited && is_state fb exited; }
    wait_for "both flooders exit" 60 both_exited
    for n in fa fb; do
        [ "$(exit_code_of "$n")" = 0 ] && pass "$n's exit is recorded on the shared disk" ||
            fail "$n's exit code: $(exit_code_of "$n")"
        [ "$(gm logs "$n" | tail -n 1)" = END ] && pass "$n's latest output is in its log" ||
            fail "$n's log ends with $(gm logs "$n" | tail -c 100)"
    done
    free_kb=$(df -k --output=avail "$D" | tail -n 1 | tr -d ' ')
    [ "$free_kb" -gt 1024 ] && pass "the shared disk keeps ${free_kb}K free" || fail "only ${free_kb}K free"
    expect "a new workload runs" 0 'after' -- gm run after -- sh -c 'echo fine'
    wait_for "after exits" 10 is_state after exited
    [ "$(exit_code_of after)" = 0 ] && pass "after's exit is recorded" || fail "after's exit code"
    expect "delete on the shared disk" 0 '' -- gm delete fa fb after
    [ -z "$(ls "$D/logs")" ] && pass "their logs are gone" || fail "left in logs: $(ls "$D/logs")"
    stop_daemon
else
    log "skipped the shared-disk part: needs root to mount a tmpfs"
fi

finish
