#!/usr/bin/env bash
# Who may act on whose workloads: every attack a local user could try through the socket, as
# gpumux-member (in the API group) and gpumux-other (in no group of ours), against root's
# workloads; then the member's own workload, used by the member and by root.
. "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! ensure_test_users || ! have_users; then
    log "skip: the permission tests need root (to create and switch to the test users)"
    exit 77
fi
MEMBER_UID=$(id -u gpumux-member)

start_daemon || exit 1
gm run rootw --env DB_PASSWORD=hunter2 -- /bin/sh -c 'echo root-secret-output; exec sleep 300' \
    >/dev/null
wait_for "root's workload runs" 10 is_state rootw running
wait_for "root's workload wrote its log" 10 bash -c "'$GPUMUX' logs rootw | grep -q root-secret-output"
pid_of() { gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='$1'][0]"; }
uid_of() { awk '/^Uid:/ {print $2}' "/proc/$1/status"; }
root_pid=$(pid_of rootw)
snapshot() { gm ps -o json | json_get "sorted((w['name'], w['state'], w['pid'], w['compute_pct'], w['memory_limit']) for w in d['workloads'])"; }
before=$(snapshot)

# The member may not change root's workload.
deny="permission denied: user gpumux-member \\(uid $MEMBER_UID\\) may not"
expect "member stops root's workload" 1 "$deny stop workload rootw of user root \\(uid 0\\): only its owner or root may" -- \
    gm_member stop rootw
expect "member deletes root's workload" 1 "$deny delete workload rootw of user root" -- gm_member delete rootw
expect "member sets root's limits" 1 "$deny change the limits of workload rootw of user root" -- \
    gm_member set rootw --memory 1G
expect "member starts root's workload" 1 "$deny start workload rootw of user root" -- gm_member start rootw
# The other user is refused by the group rule before anything else.
expect "other stops root's workload" 1 'permission denied: user gpumux-other \(uid [0-9]+\) may only read; changes need root or membership of group gpumux' -- \
    gm_other stop rootw
expect "other deletes root's workload" 1 'may only read' -- gm_other delete rootw
expect "other runs a workload" 1 'may only read' -- gm_other run intruder -- sleep 1
[ "$before" = "$(snapshot)" ] && pass "refused changes changed nothing" ||
    fail "workloads changed: $before -> $(snapshot)"
[ "$(pid_of rootw)" = "$root_pid" ] && ! gone "$root_pid" && pass "root's workload still runs" ||
    fail "root's workload was touched"

# Secrets: the environment's values are redacted and the log refused, for both users.
for who in member other; do
    out=$("gm_$who" ps -o json)
    grep -q hunter2 <<<"$out" && fail "$who reads root's DB_PASSWORD in ps" ||
        pass "$who does not read root's DB_PASSWORD in ps"
    [ "$(json_get "[w['env']['DB_PASSWORD'] for w in d['workloads'] if w['name']=='rootw'][0]" <<<"$out")" = "<redacted>" ] &&
        pass "$who sees DB_PASSWORD as <redacted>" || fail "$who sees: $out"
    [ "$(json_get "[w['log_path'] for w in d['workloads'] if w['name']=='rootw'][0]" <<<"$out")" = None ] &&
        pass "$who is not told root's log path" || fail "$who is told the log path"
    expect "$who reads root's log" 1 "permission denied: user gpumux-$who \\(uid [0-9]+\\) may not read the log of workload rootw of user root \\(uid 0\\): only its owner or root may" -- \
        "gm_$who" logs rootw
    out=$(as_$who curl -s --unix-socket "$GPUMUX_SOCKET" http://localhost/v1/workloads/rootw/logs)
    grep -q root-secret-output <<<"$out" && fail "$who reads root's log over the API" ||
        pass "$who cannot read root's log over the API"
done
expect "root reads its own secret" 0 hunter2 -- gm ps -o json

# GPU modes, MPS and VM claims are root's unless an admin group is configured.
admin_deny='GPU modes, MPS and VM claims need root \(no admin_group is configured\)'
expect "member changes a GPU mode" 1 "$deny change the sharing mode of GPU 1: $admin_deny" -- \
    gm_member gpu mode 1 mps
expect "member starts MPS" 1 "$deny start MPS: $admin_deny" -- gm_member mps start --gpu 1
expect "member stops MPS" 1 "$deny stop MPS: $admin_deny" -- gm_member mps stop --gpu 1
expect "member claims a GPU for a VM" 1 "$deny give a GPU to a VM: $admin_deny" -- \
    gm_member vm attach vm1 --gpu 1
expect "other claims a GPU for a VM" 1 "may not give a GPU to a VM" -- gm_other vm attach vm1 --gpu 1
gm vm attach vmr --gpu 1 >/dev/null
expect "member releases root's VM claim" 1 "$deny take its GPU back from VM vmr" -- gm_member vm detach vmr
expect "the claim stays" 0 vmr -- gm vm ls
gm vm detach vmr >/dev/null
expect "GPU 1 stayed shared" 0 '"mode": "shared"' -- gm gpu ls -o json

# The member's own workload runs as the member and is the member's to use.
gm_member run memw --gpu 0 --env TOKEN=t0k -- /bin/sh -c 'echo member-output; exec sleep 300' >/dev/null
wait_for "the member's workload runs" 10 is_state memw running
mpid=$(pid_of memw)
[ "$(uid_of "$mpid")" = "$MEMBER_UID" ] && pass "the member's workload runs as the member" ||
    fail "the member's workload runs as uid $(uid_of "$mpid")"
expect "member sees its own TOKEN" 0 '"TOKEN": "t0k"' -- gm_member ps -o json
expect "other does not" 0 '"TOKEN": "<redacted>"' -- gm_other ps -o json
wait_for "member reads its log" 10 bash -c "setpriv --reuid=gpumux-member --regid=gpumux-member --init-groups '$GPUMUX' logs memw | grep -q member-output"
expect "member sets its limits" 0 '' -- gm_member set memw --memory 1G
expect "other stops the member's workload" 1 'may only read' -- gm_other stop memw
expect "member stops its workload" 0 '' -- gm_member stop memw
wait_for "the member's workload stopped" 10 is_state memw stopped
expect "member starts its workload" 0 '' -- gm_member start memw
wait_for "the member's workload runs again" 10 is_state memw running
expect "member stops it again" 0 '' -- gm_member stop memw
wait_for "stopped again" 10 is_state memw stopped

# Root may act on it, and root's start runs it as the member, not as root.
expect "root starts the member's workload" 0 '' -- gm start memw
wait_for "running after root's start" 10 is_state memw running
mpid=$(pid_of memw)
[ "$(uid_of "$mpid")" = "$MEMBER_UID" ] && pass "root's start runs it as the member" ||
    fail "root's start runs it as uid $(uid_of "$mpid")"
expect "root reads the member's log" 0 member-output -- gm logs memw
expect "member deletes its workload" 0 '' -- gm_member delete memw
expect "gone" 1 'no workload named memw' -- gm logs memw

# With an admin group, its members may change modes and claims, and are still no owners.
stop_daemon
start_daemon --admin-group gpumux || exit 1
expect "admin member claims a GPU for a VM" 0 '' -- gm_member vm attach vm1 --gpu 1
expect "admin member releases it" 0 '' -- gm_member vm detach vm1
expect "admin member changes a mode" 0 '' -- gm_member gpu mode 1 shared
expect "other is still refused" 1 'may not give a GPU to a VM.*group gpumux' -- gm_other vm attach vm1 --gpu 1
wait_for "root's workload is back" 10 is_state rootw running
expect "an admin is no owner" 1 "$deny stop workload rootw of user root" -- gm_member stop rootw
finish
