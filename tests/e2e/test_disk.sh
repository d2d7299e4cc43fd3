#!/usr/bin/env bash
# A full state disk loses nothing and repeats nothing. The state directory is an 8 MB tmpfs; it
# is filled in several ways (a workload writing into it, a file written from outside) and while
# it is full jobs exit, a workload is stopped and the one that filled the disk is deleted. Once
# the space is freed, every workload's history must be whole: each exit recorded exactly once
# with its code, no job started twice, the delete done, the WAL shrunk, the database intact.
. "$(dirname "$0")/lib.sh" || exit 1
[ -d "${T:-}" ] || exit 1
if [ "$(id -u)" != 0 ]; then
    log "SKIP: mounting a small state disk needs root"
    exit 77
fi
S="$T/state"
mkdir -p "$S" "$T/starts" "$T/gates"
if ! mount -t tmpfs -o size=8m,mode=0750 tmpfs "$S" 2>"$T/mount.err"; then
    log "SKIP: cannot mount a tmpfs as the state directory: $(cat "$T/mount.err")"
    exit 77
fi
# The launch directories (where the monitors write exit statuses) on a disk of their own, to be
# filled too.
L="$T/run/workloads"
mkdir -p "$L"
mount -t tmpfs -o size=1m,mode=0755 tmpfs "$L" || { umount "$S"; exit 1; }
# Everything that has files open on the small disk ends before it is unmounted, and it is
# unmounted before the test's directory is removed.
disk_cleanup() {
    local i
    [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
    for i in $(seq 1 40); do
        kill_tagged KILL
        tagged_left || break
        sleep 0.05
    done
    [ "$FAILS" -gt 0 ] && cp "$S/state.db"* "$T/" 2>/dev/null
    umount "$L" 2>/dev/null || umount -l "$L" 2>/dev/null
    umount "$S" 2>/dev/null || umount -l "$S" 2>/dev/null
    cleanup
}
trap disk_cleanup EXIT
start_daemon || exit 1
# A stopped workload whose limits are changed over and over: writes that make the WAL grow.
gm run pad --restart never --memory 1G -- sleep 1000 >/dev/null && gm stop pad >/dev/null ||
    fail "creating pad"

# A job appends one line to its own file on another file system each time it starts, then waits
# for its gate (also there) and exits with the code it was given.
job_cmd() { # NAME CODE
    printf 'echo $$ >>%s/starts/%s; while [ ! -e %s/gates/%s ]; do sleep 0.05; done; exit %s' \
        "$T" "$1" "$T" "$1" "$2"
}
starts() { [ -f "$T/starts/$1" ] && wc -l <"$T/starts/$1" || echo 0; }
avail_kb() { df -k --output=avail "$S" | tail -n 1 | tr -d ' '; }
is_full() { [ "$(avail_kb)" -lt 64 ]; }
wal_kb() { [ -f "$S/state.db-wal" ] && du -k "$S/state.db-wal" | cut -f1 || echo 0; }
max_wal=0
note_wal() {
    local w
    w=$(wal_kb)
    [ "$w" -gt "$max_wal" ] && max_wal=$w
}

# Writes through the daemon until a write fails: the database itself takes what is left.
busy_writes() {
    local i
    for i in $(seq 1 40); do
        gm set pad --memory "$((i % 9 + 1))G" >/dev/null 2>&1 || return 0
    done
}

# One round: jobs that exit while the disk is full, a stop, a delete; then the space is freed.
# $1: the round's tag, $2: how the disk is filled (a function).
round() {
    local r=$1 fill=$2
    gm run "$r-ok" --restart on-failure -- sh -c "$(job_cmd "$r-ok" 0)" >/dev/null ||
        fail "$r: creating $r-ok"
    gm run "$r-fail" --restart never -- sh -c "$(job_cmd "$r-fail" 3)" >/dev/null ||
        fail "$r: creating $r-fail"
    # $r-run ignores SIGTERM: only the SIGKILL after the grace period ends it.
    gm run "$r-run" -- sh -c "trap '' TERM; echo \$\$ >>$T/starts/$r-run; while :; do sleep 0.2; done" \
        >/dev/null ||
        fail "$r: creating $r-run"
    wait_for "$r: jobs running" 10 sh -c "[ -s $T/starts/$r-ok ] && [ -s $T/starts/$r-fail ] &&
        [ -s $T/starts/$r-run ]"
    "$fill" "$r"
    # Whatever space comes free (the daemon's reserve, a truncated WAL) is taken again at once,
    # so that everything below meets a full disk.
    rm -f "$T/untop"
    topper "$r" &
    local topper_pid=$!
    wait_for "$r: the state disk is full" 20 is_full || return
    busy_writes
    note_wal
    pass "$r: the state disk is full ($(avail_kb) KB left)"

    # While it is full: the jobs exit, one workload is stopped, the filler deleted.
    touch "$T/gates/$r-ok" "$T/gates/$r-fail"
    sleep 1
    note_wal
    expect "$r: stop while full (said pending)" 0 "stop is recorded when the state database can be written" -- \
        gm stop "$r-run"
    if [ "$fill" != fill_from_outside ]; then
        expect "$r: delete the filler while full (said pending)" 0 \
            "$r-filler deleted \(its record goes" -- gm delete "$r-filler"
    fi
    local rpid
    rpid=$(tail -n 1 "$T/starts/$r-run")
    wait_for "$r: the stopped workload (deaf to SIGTERM) is killed while the disk is full" 10 \
        sh -c "! kill -0 $rpid"
    is_full || fail "$r: the disk had room again before the stop was checked"
    sleep 1
    note_wal

    # Free the space; the records catch up.
    touch "$T/untop"
    wait "$topper_pid"
    rm -f "$S/filler-$r" "$S/outside-$r" "$S"/top-*
    wait_for "$r: $r-ok recorded as exited" 20 is_state "$r-ok" exited
    wait_for "$r: $r-fail recorded as exited" 20 is_state "$r-fail" exited
    wait_for "$r: $r-run recorded as stopped" 20 is_state "$r-run" stopped
    if [ "$fill" != fill_from_outside ]; then
        wait_for "$r: the filler's record is gone" 20 sh -c \
            "! '$GPUMUX' ps -o json | grep -q '\"$r-filler\"'"
    fi
}

topper() {
    local i=0
    while [ ! -e "$T/untop" ]; do
        i=$((i + 1))
        dd if=/dev/zero of="$S/top-$1-$i" bs=4k count=256 2>/dev/null
        [ -s "$S/top-$1-$i" ] || rm -f "$S/top-$1-$i"
        sleep 0.02
    done
}
# The disk filled by a workload of root's writing into the state directory.
fill_by_workload() {
    gm run "$1-filler" --restart never -- sh -c \
        "echo \$\$ >>$T/starts/$1-filler; dd if=/dev/zero of=$S/filler-$1 bs=64k 2>/dev/null; \
         exec sleep 1000" >/dev/null || fail "$1: creating the filler"
}
# The disk filled from outside the daemon.
fill_from_outside() {
    dd if=/dev/zero of="$S/outside-$1" bs=64k 2>/dev/null
}
# The disk filled by a workload's own log cannot happen: logs are bounded and rotated by the
# monitor. tests/e2e/test_logs.sh puts the database and the logs of two workloads writing 50 MB
# each on one 8 MB tmpfs and checks that runs, exits and deletes are still recorded.

round a fill_by_workload
round b fill_from_outside

# The disk of the launch directories full: an exit status the monitor cannot write is kept, not
# lost (a lost on-failure job would be started again), and recorded once the disk has room.
gm run r-ok --restart on-failure -- sh -c "$(job_cmd r-ok 0)" >/dev/null || fail "creating r-ok"
wait_for "r-ok runs" 10 test -s "$T/starts/r-ok"
dd if=/dev/zero of="$L/fill" bs=4k 2>/dev/null
touch "$T/gates/r-ok"
sleep 2
[ "$(state_of r-ok)" = running ] && pass "an exit not yet written leaves r-ok running" ||
    fail "r-ok is $(state_of r-ok) while its exit status could not be written"
rm -f "$L/fill"
wait_for "r-ok recorded as exited" 10 is_state r-ok exited

# A create while the disk is full fails with the reason and leaves nothing behind.
fill_from_outside c
if is_full; then
    expect "create while full is refused" 1 "full" -- \
        gm run c-new -- sh -c "echo \$\$ >>$T/starts/c-new; exec sleep 1000"
    rm -f "$S/outside-c"
    sleep 1
    [ "$(starts c-new)" = 0 ] && pass "the refused create started nothing" ||
        fail "the refused create started c-new $(starts c-new) times"
fi

# Let the reconciler settle, then check every workload's history.
sleep 2
gm ps -o json >"$T/ps.json"
gm events -o json >"$T/events.json"
python3 - "$T" <<'PY' >"$T/check.txt"
import json, os, sys
T = sys.argv[1]
ws = {w["name"]: w for w in json.load(open(T + "/ps.json"))["workloads"]}
evs = json.load(open(T + "/events.json"))["events"]
def events(name):
    return [e["message"] for e in evs if e["object"] == "workload/" + name]
def starts(name):
    p = os.path.join(T, "starts", name)
    return len(open(p).read().splitlines()) if os.path.exists(p) else 0
for r in ("a", "b"):
    for name, code, state in ((r + "-ok", 0, "exited"), (r + "-fail", 3, "exited")):
        w = ws.get(name)
        if w is None:
            print(f"FAIL {name}: no record")
            continue
        ev = events(name)
        ex = [m for m in ev if m.startswith("exited with status")]
        lost = [m for m in ev if m.startswith("lost")]
        want = f"exited with status {code}"
        if ex != [want] or lost:
            print(f"FAIL {name}: exit events {ex + lost}, expected once '{want}'")
        else:
            print(f"ok {name}: '{want}' recorded exactly once")
        if w["state"] != state or w.get("exit_code") != code:
            print(f"FAIL {name}: record {w['state']} exit_code {w.get('exit_code')}")
        else:
            print(f"ok {name}: record {state} with exit code {code}")
        if starts(name) != 1:
            print(f"FAIL {name}: started {starts(name)} times")
        else:
            print(f"ok {name}: started once")
    name = r + "-run"
    w = ws.get(name)
    ev = events(name)
    if w is None or w["state"] != "stopped" or starts(name) != 1:
        print(f"FAIL {name}: {w and w['state']}, started {starts(name)} times")
    else:
        print(f"ok {name}: stopped, started once")
    if ev.count("stopped by request") != 1:
        print(f"FAIL {name}: 'stopped by request' recorded {ev.count('stopped by request')} times")
    else:
        print(f"ok {name}: its stop recorded once")
w = ws.get("r-ok")
ev = events("r-ok")
if w is None or w["state"] != "exited" or w.get("exit_code") != 0 or \
        [m for m in ev if m.startswith(("exited", "lost"))] != ["exited with status 0"]:
    print(f"FAIL r-ok: {w and w['state']} {w and w.get('exit_code')}, events {ev}")
else:
    print("ok r-ok: its exit, written late, recorded once with status 0")
if starts("r-ok") != 1:
    print(f"FAIL r-ok: started {starts('r-ok')} times")
else:
    print("ok r-ok: started once")
if "a-filler" in ws:
    print("FAIL a-filler: its record is still there after delete")
elif events("a-filler").count("deleted") != 1:
    print(f"FAIL a-filler: 'deleted' recorded {events('a-filler').count('deleted')} times")
else:
    print("ok a-filler: deleted, recorded once")
if starts("a-filler") != 1:
    print(f"FAIL a-filler: started {starts('a-filler')} times")
if "c-new" in ws:
    print("FAIL c-new: a refused create left a record")
PY
while read -r verdict what; do
    if [ "$verdict" = ok ]; then pass "$what"; else fail "$what"; fi
done <"$T/check.txt"

ic=$(sqlite3 "$S/state.db" 'PRAGMA integrity_check;' 2>&1)
[ "$ic" = ok ] && pass "integrity_check ok" || fail "integrity_check: $ic"
# The WAL gives its space back once the disk has room again.
wal_small() { [ "$(wal_kb)" -le 256 ]; }
if wait_for "the WAL shrinks (largest seen ${max_wal} KB)" 10 wal_small; then
    pass "the WAL shrank from ${max_wal} KB to $(wal_kb) KB"
fi
pgrep -f "$T/gates" >/dev/null && fail "a job still runs"
finish
