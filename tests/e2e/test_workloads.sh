#!/usr/bin/env bash
# Process workloads on gpusim: placement, environment, logs, exit status, restarts, stop/start,
# delete, and the nvidia-smi view.
. "$(dirname "$0")/lib.sh"
start_daemon || exit 1

# The nvidia-smi table shows both simulated T4s.
out=$(gm smi)
grep -q "Tesla T4" <<<"$out" && [ "$(grep -c 'Tesla T4' <<<"$out")" -eq 2 ] &&
    pass "smi lists two Tesla T4" || fail "smi: $out"
expect "smi says the GPUs are simulated" 0 "gpumux: simulated GPUs \\(gpusim driver\\)" -- gm smi
grep -q "15109MiB" <<<"$out" && pass "smi shows 15109MiB" || fail "smi memory: $out"
# gpusim reports driver 535.104.05: the 89-column table of that nvidia-smi, every line of it.
widths=$(sed -n '3,$p' <<<"$out" | awk 'length($0) > 0 { print length($0) }' | sort -u | tr '\n' ' ')
[ "$widths" = "89 " ] && pass "smi table is 89 columns, as nvidia-smi 535 prints it" ||
    fail "smi widths: $widths"
expect "query-gpu csv" 0 '^0, Tesla T4, 15109 MiB$' -- \
    gm smi --query-gpu=index,name,memory.total --format=csv,noheader
expect "query-gpu nounits" 0 '^1, 15109$' -- \
    gm smi --query-gpu=index,memory.total --format=csv,noheader,nounits

# A workload gets its GPU and limits in the environment, output in its log.
expect "run with limits" 0 'envcheck' -- gm run envcheck --gpu 1 --compute 30 --memory 1G -- \
    sh -c 'echo "NVD=$NVIDIA_VISIBLE_DEVICES CVD=$CUDA_VISIBLE_DEVICES W=$GPUMUX_WORKLOAD C=$GPUMUX_COMPUTE_PCT M=$GPUMUX_MEMORY_LIMIT"; echo to-stderr >&2'
uuid1=$(gm gpu ls -o json | json_get "[g['uuid'] for g in d['gpus'] if g['index']==1][0]")
wait_for "envcheck exits" 10 is_state envcheck exited
expect "log has the environment" 0 "NVD=$uuid1 CVD=$uuid1 W=envcheck C=30 M=1073741824" -- gm logs envcheck
expect "log has stderr" 0 'to-stderr' -- gm logs envcheck
code=$(gm ps -o json | json_get "[w['exit_code'] for w in d['workloads'] if w['name']=='envcheck'][0]")
[ "$code" = 0 ] && pass "exit code 0 recorded" || fail "exit code $code"

# --enforce strict with a limit: accepted (it was once refused as an unknown field), recorded,
# and handed to the workload.
expect "run --enforce strict" 0 '^x started on GPU' -- gm run x --memory 1G --enforce strict -- sleep 5
enf=$(gm ps -o json | json_get "[w['enforce'] for w in d['workloads'] if w['name']=='x'][0]")
[ "$enf" = strict ] && pass "ps shows enforce strict" || fail "enforce of x: $enf"
expect "run -o json shows enforce" 0 '"enforce": "best-effort"' -- \
    gm run y --memory 1G -o json -- sleep 5
wait_for "x running" 5 is_state x running
pid=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='x'][0]")
tr '\0' '\n' <"/proc/$pid/environ" | grep -qx GPUMUX_ENFORCE=strict &&
    pass "workload x runs with GPUMUX_ENFORCE=strict" || fail "x (pid $pid) lacks GPUMUX_ENFORCE=strict"
gm delete x y >/dev/null

# A relative command path means the caller's directory.
(cd "$B" && gm run relpath -- bin/gpumux --version >/dev/null)
wait_for "relpath exits" 10 is_state relpath exited
expect "relative command run from the caller's directory" 0 'gpumux version 0' -- gm logs relpath

# Exit status and reason of a failing workload.
gm run failing --restart never -- sh -c 'exit 3' >/dev/null
wait_for "failing exits" 10 is_state failing exited
expect "ps shows the exit status" 0 'failing .*exited .*Exited \(3\)' -- gm ps
expect "reason names the status" 0 'exited with status 3' -- gm ps -o json
# on-failure restarts it, with the count recorded.
gm run flaky --restart on-failure -- sh -c 'exit 1' >/dev/null
wait_for "flaky restarted twice" 15 sh -c "[ \$($GPUMUX ps -o json | python3 -c \"import json,sys; print([w['restart_count'] for w in json.load(sys.stdin)['workloads'] if w['name']=='flaky'][0])\") -ge 2 ]" &&
    pass "on-failure restarts"
gm stop flaky >/dev/null
wait_for "flaky stopped" 10 is_state flaky stopped && pass "stop cancels restarts"

# Bin-packing: with memory limits, the second workload joins the first's GPU.
gm run pack1 --memory 4G -- sleep 300 >/dev/null
gm run pack2 --memory 4G -- sleep 300 >/dev/null
g1=$(gm ps -o json | json_get "[w['gpus'][0]['index'] for w in d['workloads'] if w['name']=='pack1'][0]")
g2=$(gm ps -o json | json_get "[w['gpus'][0]['index'] for w in d['workloads'] if w['name']=='pack2'][0]")
[ "$g1" = "$g2" ] && pass "bin-packing puts both on GPU $g1" || fail "placed on $g1 and $g2"
wait_for "pack1 running" 5 is_state pack1 running
pid=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='pack1'][0]")
kill -0 "$pid" && pass "pack1 runs as pid $pid" || fail "pid $pid not alive"
want_uid=$(${GM_AS:-} id -u)
[ "$(stat -c %u "/proc/$pid")" = "$want_uid" ] && pass "pack1 runs as its creator (uid $want_uid)" ||
    fail "pack1 runs as uid $(stat -c %u "/proc/$pid"), its creator is uid $want_uid"
expect "ps lists running workloads" 0 'pack1.*running' -- gm ps
expect "smi lists workloads in the gpumux section" 0 'pack2' -- gm smi

# stop, start, delete. stop waits until the workload has stopped, so start may follow at once.
expect "stop waits until stopped" 0 '^pack1 stopped$' -- gm stop pack1
is_state pack1 stopped && pass "stopped when stop returns" || fail "pack1 is $(state_of pack1)"
kill -0 "$pid" 2>/dev/null && fail "pid $pid survived stop" || pass "stop ended the process"
expect "start again" 0 'pack1' -- gm start pack1
wait_for "pack1 running again" 5 is_state pack1 running
expect "start twice refused" 1 'already running' -- gm start pack1
pid=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='pack1'][0]")
expect "delete" 0 '' -- gm delete pack1
kill -0 "$pid" 2>/dev/null && fail "pid $pid survived delete" || pass "delete ended the process"
expect "deleted is gone" 1 'no workload named pack1' -- gm logs pack1

# stop -t: a program that ignores SIGTERM gets SIGKILL after the grace period asked for.
gm run stubborn --gpu none -- sh -c 'trap "" TERM; while :; do sleep 0.1; done' >/dev/null
wait_for "stubborn runs" 5 is_state stubborn running
t0=$(date +%s.%N)
expect "stop -t 1 waits for SIGKILL" 0 '^stubborn stopped$' -- gm stop -t 1 stubborn
took=$(python3 -c "import time; print(round(time.time() - $t0, 1))")
python3 -c "import sys; sys.exit(not (1.0 <= $took < 8))" && pass "stop -t 1 took $took s" ||
    fail "stop -t 1 took $took s"
expect "stop -t refuses a bad value" 2 "--time: 'x' is not a number of seconds" -- gm stop -t x stubborn

# restart: stop (waiting) and start; a new pid.
gm start stubborn >/dev/null
wait_for "stubborn runs again" 5 is_state stubborn running
old_pid=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='stubborn'][0]")
expect "restart" 0 '^stubborn restarted as pid [0-9]+$' -- gm restart -t 0 stubborn
new_pid=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='stubborn'][0]")
[ -n "$new_pid" ] && [ "$new_pid" != "$old_pid" ] && pass "restart gave a new pid ($old_pid -> $new_pid)" ||
    fail "pid $old_pid -> $new_pid"
kill -0 "$old_pid" 2>/dev/null && fail "old pid $old_pid survived restart" || pass "restart ended the old process"
gm delete stubborn >/dev/null

# docker's habits: logs --tail N, ps NAME.., ps -q.
gm run lines --gpu none -- sh -c 'for i in 1 2 3 4 5; do echo "line $i"; done' >/dev/null
wait_for "lines exits" 10 is_state lines exited
[ "$(gm logs --tail 2 lines)" = "$(printf 'line 4\nline 5')" ] && pass "logs --tail 2: the last two lines" ||
    fail "logs --tail 2: $(gm logs --tail 2 lines)"
[ -z "$(gm logs -n 0 lines)" ] && pass "logs -n 0: nothing" || fail "logs -n 0: $(gm logs -n 0 lines)"
expect "logs --tail all" 0 '^line 1' -- gm logs --tail all lines
expect "logs --tail refuses a bad count" 2 "--tail: 'x' is not a number of lines" -- gm logs --tail x lines
expect "ps NAME lists that one" 0 '^lines ' -- gm ps lines
[ "$(gm ps lines | wc -l)" = 2 ] && pass "ps NAME: the header and one row" || fail "ps lines: $(gm ps lines)"
expect "ps of an unknown NAME" 1 'no workload named nosuch' -- gm ps lines nosuch
gm ps -q | grep -qx lines && pass "ps -q prints names" || fail "ps -q: $(gm ps -q)"
[ "$(gm ps -q lines)" = lines ] && pass "ps -q NAME" || fail "ps -q lines: $(gm ps -q lines)"
gm delete lines >/dev/null

# docker's restart policies: no, on-failure:N (N restarts, then it stays exited), unless-stopped.
gm run twice --gpu none --restart on-failure:2 -- sh -c 'exit 1' >/dev/null
count_is() { [ "$(gm ps -o json | json_get "[w['restart_count'] for w in d['workloads'] if w['name']=='$1'][0]")" = "$2" ]; }
settled() { gm ps -o json | json_get "[w for w in d['workloads'] if w['name']=='twice'][0]" | grep -q "'restarting': False" && is_state twice exited; }
wait_for "on-failure:2 restarted twice" 10 count_is twice 2 && pass "on-failure:2 restarted twice"
wait_for "then it stays exited" 5 settled && pass "after two restarts it stays exited"
sleep 1
count_is twice 2 && pass "no third restart" || fail "restarted again: $(gm ps twice)"
expect "restart_max in JSON" 0 '"restart_max": 2' -- gm ps -o json twice
gm delete twice >/dev/null
gm run nopolicy --gpu none --restart no -- true >/dev/null
expect "--restart no is never" 0 '"restart": "never"' -- gm ps -o json nopolicy
gm run unless --gpu none --restart unless-stopped -- sleep 30 >/dev/null
expect "--restart unless-stopped is always" 0 '"restart": "always"' -- gm ps -o json unless
expect "--restart on-failure:0 refused" 2 "on-failure:N wants N from 1" -- \
    gm run bad --restart on-failure:0 -- true
expect "--restart bogus refused" 2 "expected no \(never\), on-failure\[:N\], always or unless-stopped" -- \
    gm run bad --restart bogus -- true
gm delete nopolicy unless >/dev/null

# During the restart back-off ps says restarting, with the exit status, not exited.
gm run bouncy --gpu none --restart always -- sh -c 'sleep 0.3; exit 3' >/dev/null
saw_restarting() { gm ps | grep -Eq '^bouncy .* restarting \(3\) '; }
wait_for "ps shows 'restarting (3)'" 10 saw_restarting && pass "ps shows restarting (3) in the back-off"
wait_for "JSON says restarting" 10 sh -c "$GPUMUX ps -o json | grep -q '\"restarting\": true'" &&
    pass "JSON: restarting true"
gm delete bouncy >/dev/null

# Events record what happened.
expect "events" 0 'workload/pack1.*deleted' -- gm events
# --since as docker events takes it: a duration ago, or a time.
expect "events --since 10m" 0 'workload/pack1.*deleted' -- gm events --since 10m
sleep 1.2
all_ev=$(gm events -o json | json_get "len(d['events'])")
last_ev=$(gm events --since 1s -o json | json_get "len(d['events'])")
[ "$last_ev" -lt "$all_ev" ] && pass "events --since 1s: $last_ev of $all_ev events" ||
    fail "events --since 1s: $last_ev of $all_ev"
expect "events --since a time" 0 'workload/pack1.*deleted' -- gm events --since 2000-01-01T00:00:00Z
expect "events --since refuses nonsense" 2 "--since 'soon': expected an event id, a duration" -- \
    gm events --since soon

# A clean daemon stop leaves workloads running; a new daemon re-adopts them.
pid2=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='pack2'][0]")
stop_daemon
kill -0 "$pid2" && pass "workload outlives the daemon" || fail "pack2 died with the daemon"
start_daemon || exit 1
wait_for "pack2 re-adopted" 5 is_state pack2 running && pass "pack2 re-adopted"
pidn=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='pack2'][0]")
[ "$pidn" = "$pid2" ] && pass "same pid after restart" || fail "pid $pid2 became $pidn"
expect "re-adopted event" 0 're-adopted' -- gm events

# A limit set on a workload started without one waits for its next start (it runs without the
# interposer): ps says so, and a restart puts it in force.
gm run nolimit --gpu 1 -- sleep 300 >/dev/null
expect "set without the interposer" 0 "apply when it starts next" -- gm set nolimit --compute 40
expect "ps: pending, not in force" 0 '^nolimit +1 +shared +- \(40% at next start\) ' -- gm ps nolimit
gm restart -t 1 nolimit >/dev/null
expect "after a restart it is in force" 0 '^nolimit +1 +shared +40% +- +running' -- gm ps nolimit

# run --rm: deleted once it has ended, as docker's; the event log keeps what happened.
expect "--rm with a restart policy is refused" 1 "--rm and --restart always conflict" -- \
    gm run rmbad --rm --restart always -- true
gm run rmonce --rm -- sh -c 'echo bye' >/dev/null
wait_for "the --rm workload is gone once it exited" 10 sh -c "! '$GPUMUX' ps -q | grep -qx rmonce"
expect "its end and its deletion are in the event log" 0 \
    'workload/rmonce +exited with status 0' -- gm events
expect "the deletion says why" 0 'workload/rmonce +deleted: it ended and was started with --rm' -- gm events
gm run rmstop --rm -- sleep 300 >/dev/null
expect "JSON says auto_remove" 0 '^True$' -- \
    sh -c "'$GPUMUX' ps rmstop -o json | python3 -c \"import json,sys; print(json.load(sys.stdin)['workloads'][0]['auto_remove'])\""
expect "restart of a --rm workload is refused before anything is done" 1 \
    'started with --rm: stopping it deletes it' -- gm restart rmstop
expect "and it still runs" 0 '^rmstop .* running ' -- gm ps rmstop
expect "stop of a --rm workload stops and deletes it" 0 '^rmstop stopped and deleted' -- gm stop -t 1 rmstop
expect "it is gone" 1 'no workload named rmstop' -- gm ps rmstop
gm run rmdel --rm -- sleep 300 >/dev/null
expect "delete of a --rm workload" 0 '^rmdel deleted' -- gm delete rmdel
finish
