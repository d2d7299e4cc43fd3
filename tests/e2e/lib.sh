# Shared helpers for the end-to-end tests: each test starts a real gpumuxd on gpusim in its own
# temporary directory and drives it through the gpumux CLI.
# shellcheck shell=bash
set -u

B=${GM_BUILD_DIR:?GM_BUILD_DIR must point at the build directory}
GPUMUX="$B/bin/gpumux"
GPUMUXD="$B/bin/gpumuxd"
T=$(mktemp -d /tmp/gm-e2e.XXXXXX)
chmod 0755 "$T" # other users reach the socket (the group check is tested)
export GPUMUX_SOCKET="$T/run/gpumux.sock"
export GM_E2E_TAG="$T" # inherited by the daemon and so by every workload: the cleanup finds them
export GPUSIM_STATE="$T/run/gpusim.state"
# In the sanitizer build, workloads are instrumented programs into which the daemon preloads the
# (plain) interposer ahead of the ASan runtime; ASan accepts that when told so.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
FAILS=0
PASSES=0
DAEMON_PID=
# Each test's launches get their cgroups under a parent of their own: tests run at once and
# workload names repeat between them. Without root or a cgroup hierarchy: lock-only tracking.
GM_CGROUP_ROOT=none
if [ "$(id -u)" = 0 ] &&
    awk '/ - cgroup2 / || / - cgroup .*[ ,](pids|freezer)(,|$)/ {f = 1} END {exit !f}' \
        /proc/self/mountinfo; then
    GM_CGROUP_ROOT="gpumux-test/${T##*/}"
fi

log() { printf '%s\n' "$*" >&2; }

# Kills every process started under this test (daemon, monitors, workloads).
kill_tagged() {
    local sig=${1:-KILL} p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        if { tr "\0" "\n" <"$p/environ"; } 2>/dev/null | grep -qx "GM_E2E_TAG=$T"; then
            kill "-$sig" "${p#/proc/}" 2>/dev/null
        fi
    done
}

# gone PID: no such process, or a zombie (nothing reaps orphans in some sandboxes).
gone() {
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
    [ "${st%% *}" = Z ]
}

# tagged_left: are processes of this test still alive?
tagged_left() {
    local p
    for p in /proc/[0-9]*; do
        [ "${p#/proc/}" = "$$" ] && continue
        if { tr "\0" "\n" <"$p/environ"; } 2>/dev/null | grep -qx "GM_E2E_TAG=$T" &&
            ! gone "${p#/proc/}"; then
            return 0
        fi
    done
    return 1
}

cleanup() {
    # The daemon first, so that it cannot start anything again (an MPS control daemon it finds
    # dead), then everything else of the test, until nothing is left.
    [ -n "$DAEMON_PID" ] && kill -KILL "$DAEMON_PID" 2>/dev/null
    local i
    for i in $(seq 1 40); do
        kill_tagged KILL
        tagged_left || break
        sleep 0.05
    done
    # The test's cgroups, emptied above (their processes carry the tag).
    local m
    for m in $(awk '/ - cgroup2? / {print $5}' /proc/self/mountinfo); do
        [ -d "$m/gpumux-test/${T##*/}" ] &&
            find "$m/gpumux-test/${T##*/}" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    if [ "${GM_KEEP:-0}" = 1 ] || [ "$FAILS" -gt 0 ]; then
        log "state kept in $T"
        [ -f "$T/daemon.log" ] && tail -n 30 "$T/daemon.log" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT

# start_daemon [extra gpumuxd options]: starts gpumuxd and waits until it answers. Workload logs
# go to $T/logs; later options override earlier ones (--log-dir, --state-dir).
start_daemon() {
    mkdir -p "$T/state" "$T/run"
    "$GPUMUXD" --driver sim --state-dir "$T/state" --run-dir "$T/run" --log-dir "$T/logs" \
        --gpusim-state "$GPUSIM_STATE" --poll-interval-ms 50 --stop-timeout 3 $GM_DAEMON_AS \
        --cgroup-root "$GM_CGROUP_ROOT" "$@" \
        >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    local i
    for i in $(seq 1 200); do
        if "$GPUMUX" info >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            log "gpumuxd exited at start:"; tail -n 20 "$T/daemon.log" >&2; return 1
        fi
        sleep 0.05
    done
    log "gpumuxd did not answer within 10 s"; return 1
}

stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
}

kill9_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
}

gm() { ${GM_AS:-} "$GPUMUX" "$@"; }

# The test users, created once per machine when the tests run as root: gpumux-member belongs to
# the API group gpumux, gpumux-other to no group of ours. as_member / as_other run a command as
# them (the CLI, or a file the attack needs); have_users says whether they exist.
ensure_test_users() {
    [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && command -v useradd >/dev/null ||
        return 1
    (
        flock 9
        getent group gpumux >/dev/null || groupadd -r gpumux || exit 1
        getent passwd gpumux-member >/dev/null ||
            useradd -r -M -d / -s /usr/sbin/nologin -G gpumux gpumux-member || exit 1
        getent passwd gpumux-other >/dev/null ||
            useradd -r -M -d / -s /usr/sbin/nologin gpumux-other || exit 1
    ) 9>/tmp/gpumux-test-users.lock
}
have_users() { getent passwd gpumux-member >/dev/null && getent passwd gpumux-other >/dev/null; }
as_member() { setpriv --reuid=gpumux-member --regid=gpumux-member --init-groups "$@"; }
as_other() { setpriv --reuid=gpumux-other --regid=gpumux-other --init-groups "$@"; }
gm_member() { as_member "$GPUMUX" "$@"; }
gm_other() { as_other "$GPUMUX" "$@"; }

pass() { PASSES=$((PASSES + 1)); log "ok: $*"; }
fail() { FAILS=$((FAILS + 1)); log "FAIL: $*"; }

# expect DESCRIPTION STATUS PATTERN -- COMMAND...: COMMAND exits with STATUS and its stdout+stderr
# match the extended regular expression PATTERN.
expect() {
    local what=$1 want=$2 pat=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" != "$want" ]; then
        fail "$what: exit status $rc, expected $want; output: $out"
    elif ! grep -Eq -- "$pat" <<<"$out"; then
        fail "$what: output does not match /$pat/: $out"
    else
        pass "$what"
    fi
}

# json_get EXPR: reads JSON on stdin and prints python's value of EXPR over it (d).
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# wait_for DESCRIPTION SECONDS COMMAND...: retries until COMMAND succeeds.
wait_for() {
    local what=$1 secs=$2 i
    shift 2
    for i in $(seq 1 $((secs * 20))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    fail "$what: not true after ${secs}s"
    return 1
}

state_of() { gm ps -o json | json_get "[w['state'] for w in d['workloads'] if w['name']=='$1'][0]"; }
is_state() { [ "$(state_of "$1")" = "$2" ]; }

finish() {
    log "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

# GM_TEST_AS=member: the same test with every `gm` call made by gpumux-member, a member of the API
# group and of the admin group the daemon is then given (GPU modes, MPS, VMs), never root: as
# container runtimes run their suites rootless too. Its workloads run as that user.
GM_AS=
GM_DAEMON_AS=
if [ "${GM_TEST_AS:-root}" = member ]; then
    if ! ensure_test_users; then
        log "skip: running the CLI as a group member needs root, setpriv and useradd"
        exit 77
    fi
    GM_AS=as_member
    GM_DAEMON_AS="--admin-group gpumux"
    log "the CLI runs as gpumux-member (uid $(id -u gpumux-member))"
fi
