#!/usr/bin/env bash
# Trust and supervision: a workload's environment never reaches root code, and no workload
# escapes its supervision (unlocking or closing inherited descriptors, setsid, double fork,
# another process group), across stops, deletes, restarts and a daemon crash. Processes are
# counted in /proc by a marker variable each workload is given, not only through gpumux.
. "$(dirname "$0")/lib.sh"
if [ "$GM_CGROUP_ROOT" = none ]; then
    log "skipped: needs root and a cgroup hierarchy (cgroup v2, or v1 pids or freezer)"
    exit 77
fi
start_daemon || exit 1
grep -q "each launch runs in its own cgroup under" "$T/daemon.log" &&
    pass "the daemon says where launches get their cgroups" ||
    fail "no cgroup line in the daemon's log: $(head -n 5 "$T/daemon.log")"

# marked NAME: the pids of live (not zombie) processes of this test whose environment has
# GM_ESC=NAME.
marked() {
    local p
    for p in /proc/[0-9]*; do
        { tr "\0" "\n" <"$p/environ"; } 2>/dev/null |
            grep -cx -e "GM_ESC=$1" -e "GM_E2E_TAG=$T" | grep -qx 2 &&
            ! gone "${p#/proc/}" && echo "${p#/proc/}"
    done
}
nmarked() { marked "$1" | wc -l; }
# marked_cmd NAME PATTERN: how many of them run a command line matching PATTERN.
marked_cmd() {
    local p n=0
    for p in $(marked "$1"); do
        tr "\0" " " <"/proc/$p/cmdline" 2>/dev/null | grep -Eq -- "$2" && n=$((n + 1))
    done
    echo "$n"
}
none_left() { [ "$(nmarked "$1")" = 0 ]; }
field() { gm ps -o json | json_get "[w['$2'] for w in d['workloads'] if w['name']=='$1'][0]"; }

# ---- 1. flock -u 3 and closing every descriptor: no restart, exactly one copy -------------------
gm run unlock --env GM_ESC=unlock --restart always -- \
    sh -c 'flock -u 3 2>/dev/null; exec 0<&- 1>&- 2>&- 3>&-; exec sleep 1000' >/dev/null
wait_for "unlock running" 10 is_state unlock running
sleep 2
[ "$(field unlock restart_count)" = 0 ] && pass "flock -u 3: not taken for lost, not restarted" ||
    fail "flock -u 3: restarted $(field unlock restart_count) times"
[ "$(marked_cmd unlock 'sleep 1000')" = 1 ] && pass "flock -u 3: exactly one copy runs" ||
    fail "flock -u 3: $(marked_cmd unlock 'sleep 1000') copies run"
is_state unlock running && pass "flock -u 3: ps says running" || fail "unlock: $(state_of unlock)"
gm stop unlock >/dev/null
wait_for "unlock stopped" 10 is_state unlock stopped
none_left unlock && pass "flock -u 3: stop ended it" || fail "unlock left: $(marked unlock)"

# ---- 2. setsid child, the main process stopped ----------------------------------------------------
gm run sid --env GM_ESC=sid -- sh -c 'setsid sleep 1000 & exec sleep 999' >/dev/null
wait_for "sid running" 10 is_state sid running
for i in $(seq 1 100); do [ "$(marked_cmd sid 'sleep 1000')" = 1 ] && break; sleep 0.05; done
[ "$(marked_cmd sid 'sleep 1000')" = 1 ] && pass "setsid: the child left its session and runs" ||
    fail "setsid child not seen: $(marked sid)"
expect "stop sid" 0 "" -- gm stop sid
wait_for "sid stopped" 10 is_state sid stopped
none_left sid && pass "setsid: after stop nothing of it lives" || fail "sid left: $(marked sid)"

# ---- 3. setsid child, the main process exits on its own --------------------------------------------
gm run sidexit --env GM_ESC=sidexit -- sh -c 'setsid sleep 1000 & sleep 0.5; exit 0' >/dev/null
wait_for "sidexit exited" 10 is_state sidexit exited
none_left sidexit && pass "setsid: once the exit is recorded nothing of it lives" ||
    fail "sidexit left: $(marked sidexit)"
expect "log says what was left behind" 0 "killing the 1 process\\(es\\) it left behind" -- \
    gm logs sidexit

# ---- 4. double fork, then delete -------------------------------------------------------------------
gm run dfork --env GM_ESC=dfork -- sh -c '(sh -c "sleep 1000 &" &); exec sleep 999' >/dev/null
wait_for "dfork running" 10 is_state dfork running
for i in $(seq 1 100); do [ "$(marked_cmd dfork 'sleep 1000')" = 1 ] && break; sleep 0.05; done
[ "$(marked_cmd dfork 'sleep 1000')" = 1 ] && pass "double fork: the orphan runs" ||
    fail "double fork: orphan not seen"
expect "delete dfork" 0 "" -- gm delete dfork
none_left dfork && pass "double fork: after delete nothing of it lives" ||
    fail "dfork left: $(marked dfork)"
cgparent=$(sed -n 's/.*each launch runs in its own cgroup under \(.*\) (.*/\1/p' "$T/daemon.log" | head -n 1)
# (at once, or by the sweep when the monitor was still on its way out)
[ -n "$cgparent" ] && [ -d "$cgparent" ] &&
    wait_for "dfork's cgroups removed" 15 test ! -e "$cgparent/dfork" &&
    pass "delete removed the workload's cgroups"

# ---- 5. a child in another process group, stop --------------------------------------------------------
gm run pgrp --env GM_ESC=pgrp -- bash -c 'set -m; sleep 1000 & exec sleep 999' >/dev/null
wait_for "pgrp running" 10 is_state pgrp running
for i in $(seq 1 100); do [ "$(marked_cmd pgrp 'sleep 1000')" = 1 ] && break; sleep 0.05; done
main=$(field pgrp pid)
child=$(for p in $(marked pgrp); do tr "\0" " " <"/proc/$p/cmdline" | grep -q 'sleep 1000' && echo "$p"; done)
[ -n "$child" ] && [ "$(ps -o pgid= -p "$child" | tr -d ' ')" != "$(ps -o pgid= -p "$main" | tr -d ' ')" ] &&
    pass "process group: the child left the workload's group" || fail "pgrp child $child of $main"
gm stop pgrp >/dev/null
wait_for "pgrp stopped" 10 is_state pgrp stopped
none_left pgrp && pass "process group: after stop nothing of it lives" || fail "pgrp left: $(marked pgrp)"

# ---- 6. restart always with an escaping child: never two copies -------------------------------------
gm run always --env GM_ESC=always --restart always -- \
    sh -c 'setsid sleep 1000 & exec 3>&-; sleep 0.2; exit 0' >/dev/null
max=0
for i in $(seq 1 60); do
    n=$(marked_cmd always 'sleep 1000')
    [ "$n" -gt "$max" ] && max=$n
    sleep 0.05
done
rc=$(field always restart_count)
[ "$rc" -ge 2 ] && pass "restart always: restarted ($rc times)" || fail "restart always: $rc restarts"
[ "$max" -le 1 ] && pass "restart always: never two copies alive (at most $max)" ||
    fail "restart always: $max copies alive at once"
gm stop always >/dev/null
wait_for "always stopped" 10 is_state always stopped
none_left always && pass "restart always: after stop nothing lives" || fail "always left: $(marked always)"

# ---- 7. a daemon crash with an escaped child alone left: found by its cgroup, never run twice --------
gm run crashy --env GM_ESC=crashy --restart always -- \
    sh -c 'setsid sh -c "exec 0<&- 1>&- 2>&- 3>&-; exec sleep 1000" & exec sleep 999' >/dev/null
wait_for "crashy running" 10 is_state crashy running
for i in $(seq 1 100); do [ "$(marked_cmd crashy 'sleep 1000')" = 1 ] && break; sleep 0.05; done
kill9_daemon
# Its monitor and then its main process die while the daemon is down: only the escaped child
# is left (the monitor first, or it would end the child as the main process's leftover).
for p in /proc/[0-9]*; do
    tr "\0" " " <"$p/cmdline" 2>/dev/null | grep -q "gpumux-monitor .*$T/run/workloads/crashy/" &&
        kill -KILL "${p#/proc/}"
done
sleep 0.2
for p in $(marked crashy); do
    tr "\0" " " <"/proc/$p/cmdline" | grep -q 'sleep 1000' || kill -KILL "$p"
done
[ "$(nmarked crashy)" = 1 ] && pass "crash: only the escaped child is left" ||
    fail "crash: left $(for p in $(marked crashy); do tr '\0' ' ' </proc/$p/cmdline; echo; done)"
sleep 0.3
start_daemon || exit 1
sleep 1.5
[ "$(field crashy restart_count)" = 0 ] && pass "after a crash the escaped child's launch is not lost" ||
    fail "crashy restarted $(field crashy restart_count) times: $(gm ps)"
[ "$(nmarked crashy)" = 1 ] && pass "after a crash nothing started again beside it" ||
    fail "crashy copies: $(for p in $(marked crashy); do tr '\0' ' ' </proc/$p/cmdline; echo; done)"
gm stop crashy >/dev/null
wait_for "crashy stopped" 20 is_state crashy stopped
none_left crashy && pass "after a crash, stop ends the escaped child" || fail "crashy left: $(marked crashy)"

# ---- 8. the request's environment never reaches root code --------------------------------------------
if ensure_test_users && have_users; then
    mkdir -p "$T/evil" "$T/mark"
    chmod 0755 "$T/evil"
    chmod 0777 "$T/mark"
    cat >"$T/evil/evil.c" <<EOF
#include <stdio.h>
#include <unistd.h>
unsigned la_version(unsigned v) { return v; }
__attribute__((constructor)) static void mark(void)
{
    char p[512];
    snprintf(p, sizeof(p), "$T/mark/%s-%d", getuid() == 0 || geteuid() == 0 ? "root" : "user",
             (int)getpid());
    FILE *f = fopen(p, "w");
    if (f) fclose(f);
}
EOF
    cc -shared -fPIC -o "$T/evil/evil.so" "$T/evil/evil.c" && chmod 0755 "$T/evil/evil.so"
    mkdir -p "$T/evil/gconv" && chmod 0755 "$T/evil/gconv"
    expect "a member runs a workload with a loader environment" 0 "" -- \
        gm_member run evil --env GM_ESC=evil --env LD_PRELOAD="$T/evil/evil.so" \
        --env LD_AUDIT="$T/evil/evil.so" --env LD_LIBRARY_PATH="$T/evil" \
        --env GCONV_PATH="$T/evil/gconv" -- \
        sh -c 'echo "LDP=$LD_PRELOAD AUD=$LD_AUDIT LLP=$LD_LIBRARY_PATH GC=$GCONV_PATH"; exec sleep 1000'
    wait_for "evil running" 10 is_state evil running
    sleep 0.5
    ls "$T/mark" | grep -q '^root-' && fail "root code loaded the member's library: $(ls "$T/mark")" ||
        pass "no root process loaded the member's LD_PRELOAD/LD_AUDIT library"
    ls "$T/mark" | grep -q '^user-' && pass "the workload itself loaded it (as its user)" ||
        fail "the workload did not load its LD_PRELOAD (marks: $(ls "$T/mark"))"
    mon=
    for p in /proc/[0-9]*; do
        { tr "\0" " " <"$p/cmdline"; } 2>/dev/null | grep -q "gpumux-monitor .*$T/run/workloads/evil/" &&
            mon=${p#/proc/}
    done
    [ -n "$mon" ] && ! tr "\0" "\n" <"/proc/$mon/environ" |
        grep -Eq "^(LD_PRELOAD|LD_AUDIT|GCONV_PATH)=|^LD_LIBRARY_PATH=.*$T/evil|^GM_ESC=" &&
        pass "the monitor (uid $(stat -c %u "/proc/$mon")) runs without the request's variables" ||
        fail "monitor ${mon:-not found} environment: $(tr '\0' ' ' <"/proc/$mon/environ" 2>/dev/null)"
    tr "\0" "\n" <"/proc/$mon/environ" | grep -qx "GM_E2E_TAG=$T" &&
        pass "the monitor keeps the daemon's environment" || fail "monitor lacks GM_E2E_TAG"
    wait_for "evil's log" 5 sh -c "'$GPUMUX' logs evil | grep -q LDP="
    expect "the workload sees the variables it was given" 0 \
        "LDP=$T/evil/evil.so AUD=$T/evil/evil.so LLP=.*$T/evil.* GC=$T/evil/gconv" -- gm logs evil
    wpid=$(field evil pid)
    [ "$(stat -c %u "/proc/$wpid")" = "$(id -u gpumux-member)" ] &&
        pass "the workload runs as the member" || fail "workload uid $(stat -c %u "/proc/$wpid")"
    gm delete evil >/dev/null
    none_left evil && pass "evil deleted" || fail "evil left: $(marked evil)"
else
    log "note: test users unavailable; the environment attack is not tried"
fi

finish
