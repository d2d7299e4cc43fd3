#!/usr/bin/env bash
# Directories and files cannot be turned against root: gpumux-other pre-creates the state or run
# directory under /tmp (its own, or root's but writable by all) with links at the names the
# daemon uses, pointing at a file of root's. The daemon must refuse to start, naming the
# directory and what is wrong, and the file must be unchanged. Where the daemon does run, no
# directory it writes in is open to another user.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! ensure_test_users || ! have_users; then
    log "skipped: needs root and the test users"
    exit 77
fi
OTHER_UID=$(id -u gpumux-other)

# The attacker's directories live beside ours in /tmp and go with them.
A= L=
cleanup_dirs() {
    [ -n "$A" ] && rm -rf "$A"
    [ -n "$L" ] && rm -f "$L"
    cleanup
}
trap cleanup_dirs EXIT
A=$(as_other mktemp -d /tmp/gm-attack.XXXXXX)
as_other chmod 0755 "$A"

# The victims: root's files (and a directory) the links point at.
printf 'precious\n' >"$T/victim"
chmod 0600 "$T/victim"
mkdir -m 0700 "$T/victimdir"
victim_state() { stat -c '%u:%g %a %s %Y' "$T/victim" "$T/victimdir"; md5sum <"$T/victim"; ls -A "$T/victimdir"; }
before=$(victim_state)
victim_intact() {
    if [ "$(victim_state)" = "$before" ]; then
        pass "$1: the victim is unchanged"
    else
        fail "$1: the victim changed: $(victim_state) (was $before)"
    fi
}

# plant DIR: the links an attacker leaves at every name the daemon opens in a state or run dir.
plant() {
    local d=$1 n
    for n in gpumuxd.lock state.db state.db-wal state.db-shm state.db.new gpumux.sock \
        gpusim.state; do
        as_other ln -sf "$T/victim" "$d/$n"
    done
    for n in logs workloads regions mps; do
        as_other ln -sfn "$T/victimdir" "$d/$n"
    done
}

daemon() {
    timeout 20 "$GPUMUXD" --driver sim --poll-interval-ms 50 --log-dir "$T/logs0" \
        --cgroup-root "$GM_CGROUP_ROOT" "$@"
}

# 1. The state directory is the attacker's own.
as_other mkdir "$A/state"
plant "$A/state"
mkdir -p "$T/run1"
expect "state directory of another user refused" 1 \
    "state_dir: directory $A(/state)?: owned by uid $OTHER_UID, not root" -- \
    daemon --state-dir "$A/state" --run-dir "$T/run1" --gpusim-state "$T/run1/gpusim.state"
victim_intact "attacker's state directory"

# 2. The run directory is the attacker's own.
as_other mkdir "$A/run"
plant "$A/run"
expect "run directory of another user refused" 1 \
    "run_dir: directory $A(/run)?: owned by uid $OTHER_UID, not root" -- \
    daemon --state-dir "$T/state2" --run-dir "$A/run"
victim_intact "attacker's run directory"

# 3. Root's directories, but writable by everyone: the links were planted in them.
mkdir -m 0777 "$T/open-state" "$T/open-run"
chmod 0777 "$T/open-state" "$T/open-run"
plant "$T/open-state"
plant "$T/open-run"
expect "state directory writable by all refused" 1 \
    "directory $T/open-state: writable by others \(mode 0777\)" -- \
    daemon --state-dir "$T/open-state" --run-dir "$T/run1" --gpusim-state "$T/run1/gpusim.state"
expect "run directory writable by all refused" 1 \
    "directory $T/open-run: writable by others \(mode 0777\)" -- \
    daemon --state-dir "$T/state2" --run-dir "$T/open-run"
victim_intact "world-writable directories"

# 4. Sticky is not enough for the directory itself: others still create names in it.
mkdir "$T/sticky-run"
chmod 1777 "$T/sticky-run"
as_other ln -s "$T/victim" "$T/sticky-run/gpumux.sock"
expect "sticky run directory refused" 1 "directory $T/sticky-run: writable by others \(mode 1777\)" \
    -- daemon --state-dir "$T/state2" --run-dir "$T/sticky-run"
victim_intact "sticky run directory"

# 5. A directory above ours that the attacker may write to: it could swap ours for its own.
as_other mkdir -m 0777 "$A/up"
as_other chmod 0777 "$A/up"
expect "untrusted ancestor refused" 1 "directory $A: owned by uid $OTHER_UID, not root" -- \
    daemon --state-dir "$A/up/state" --run-dir "$T/run1" --gpusim-state "$T/run1/gpusim.state"
[ ! -e "$A/up/state" ] && pass "nothing created under an untrusted ancestor" ||
    fail "created $A/up/state"

# 6. A link of the attacker's in /tmp, to a directory of root's, is not followed.
L=/tmp/gm-attack-link.$$
as_other ln -s "$T" "$L"
expect "attacker's link to a good directory refused" 1 \
    "symbolic link $L: owned by uid $OTHER_UID, not root" -- \
    daemon --state-dir "$L/state3" --run-dir "$T/run1" --gpusim-state "$T/run1/gpusim.state"
[ ! -e "$T/state3" ] && pass "nothing created through the attacker's link" ||
    fail "created $T/state3 through $L"

# 7. The gpusim state file in a directory of the attacker's: refused too.
as_other ln -s "$T/victim" "$A/gpusim.state"
expect "gpusim state in another user's directory refused" 1 \
    "gpusim_state $A/gpusim.state: directory $A: owned by uid $OTHER_UID" -- \
    daemon --state-dir "$T/state2" --run-dir "$T/run1" --gpusim-state "$A/gpusim.state"
victim_intact "gpusim state link"

# 8. What the daemon makes itself is closed to others: nobody else can plant a link where a
# workload's log, launch files, region or the socket go.
rm -rf "$T/state" "$T/run"
"$GPUMUXD" --driver sim --state-dir "$T/state" --run-dir "$T/run" --log-dir "$T/logs" \
    --cgroup-root "$GM_CGROUP_ROOT" \
    --gpusim-state "$GPUSIM_STATE" --poll-interval-ms 50 >>"$T/daemon.log" 2>&1 &
DAEMON_PID=$!
wait_for "daemon answers" 10 gm info
[ "$(stat -c '%u %a' "$T/state" "$T/run" | tr '\n' ' ')" = "0 750 0 755 " ] &&
    pass "state 0750 and run 0755, owned by root" ||
    fail "modes: $(stat -c '%n %u %a' "$T/state" "$T/run")"
expect "a limited workload runs" 0 "started" -- gm run w1 --memory 1G -- sh -c 'echo hello; sleep 30'
wait_for "its log" 10 grep -q hello "$T/logs/w1.log"
[ "$(stat -c '%u %a' "$T/logs")" = "0 750" ] && pass "log_dir 0750, owned by root" ||
    fail "log_dir: $(stat -c '%u %a' "$T/logs")"
for d in "$T/state" "$T/logs" "$T/run" "$T/run/workloads" "$T/run/workloads/w1" \
    "$T/run/regions"; do
    if [ ! -d "$d" ]; then
        fail "$d: missing"
    elif as_other ln -s "$T/victim" "$d/planted" 2>/dev/null; then
        fail "gpumux-other could plant a link in $d"
    else
        pass "no link can be planted in ${d#"$T"/}"
    fi
done
if as_other sh -c "echo x >>'$T/logs/w1.log'" 2>/dev/null; then
    fail "gpumux-other could write to w1's log"
else
    pass "the log is not writable by others"
fi
victim_intact "running daemon"
finish
