#!/usr/bin/env bash
# MPS through gpumuxd on gpusim: start/stop/status, the workloads' MPS environment, the 48-client
# limit, a killed control daemon, MPS across daemon restarts, and the refusals.
. "$(dirname "$0")/lib.sh"
start_daemon || exit 1
uuid0=$(gm gpu ls -o json | json_get "[g['uuid'] for g in d['gpus'] if g['index']==0][0]")

expect "mps start" 0 'Started the MPS control daemon for GPU 0' -- gm mps start --gpu 0
expect "mps start again says it is done" 0 '^All done.$' -- gm mps start --gpu 0
expect "mode is mps" 0 '^0 .* mps ' -- gm gpu ls
cpid=$(gm mps status -o json | json_get "[g['control_pid'] for g in d['gpus'] if g['index']==0][0]")
[ -n "$cpid" ] && kill -0 "$cpid" && pass "control daemon runs (pid $cpid)" || fail "no control daemon"
tr '\0' '\n' <"/proc/$cpid/environ" | grep -qx "CUDA_VISIBLE_DEVICES=$uuid0" &&
    pass "control daemon sees only its GPU" || fail "control daemon environment"
pipe="$T/run/mps/$uuid0/pipe"
[ -f "$pipe/nvidia-cuda-mps-control.pid" ] && pass "pipe directory under the run directory" ||
    fail "no pid file in $pipe"
[ -f "$T/run/mps/$uuid0/log/control.log" ] && pass "control.log written" || fail "no control.log"
expect "start again is harmless" 0 'already runs' -- gm mps start --gpu 0
# JSON numbers are numbers: the default percentage MPS prints as 100.0, the servers' pids.
pct=$(gm mps status -o json | json_get "[type(g['default_active_thread_percentage']).__name__ + ':' + str(g['default_active_thread_percentage']) for g in d['gpus'] if g['index']==0][0]")
[ "$pct" = "int:100" ] && pass "default_active_thread_percentage is the number 100" || fail "got $pct"
srv=$(gm mps status -o json | json_get "[type(g['servers']).__name__ for g in d['gpus'] if g['index']==0][0]")
[ "$srv" = list ] && pass "servers is a list" || fail "servers is a $srv"
expect "the table shows the same percentage" 0 '^0 .* 100 ' -- gm mps status
# A running control daemon takes new defaults, for the clients that start from now on.
expect "start on a running daemon applies the percentage" 0 \
    'Set the default active thread percentage from 100 to 40\..*clients started from now on' -- \
    sh -c "'$GPUMUX' mps start --gpu 0 --active-thread-percentage 40 | tr '\n' ' '"
expect "the control daemon has it" 0 '^0 .* 40 ' -- gm mps status
expect "a repeated start changes nothing and says nothing of it" 0 '^MPS control daemon for GPU 0 already runs \(pid [0-9]+\)\.$' -- \
    sh -c "'$GPUMUX' mps start --gpu 0 | head -n 1; '$GPUMUX' mps start --gpu 0 | grep -c 'Set the' | grep -q '^0$'"
gm mps start --gpu 0 --active-thread-percentage 100 >/dev/null

# Workloads on the MPS GPU get its pipe directory and their share.
gm run m1 --gpu 0 --compute 30 --memory 1G -- sh -c 'env; exec sleep 300' >/dev/null
wait_for "m1 running" 5 is_state m1 running
wait_for "m1 printed its environment" 5 sh -c "$GPUMUX logs m1 | grep -q ^CUDA_MPS_PIPE_DIRECTORY="
expect "pipe directory in the environment" 0 "CUDA_MPS_PIPE_DIRECTORY=$pipe" -- gm logs m1
expect "active thread percentage" 0 '^CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=30$' -- gm logs m1
expect "pinned memory limit" 0 '^CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=1024M$' -- gm logs m1
gm run m2 --gpu 0 --env CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=70 -- sleep 300 >/dev/null
c=$(gm ps -o json | json_get "[w['compute_pct'] for w in d['workloads'] if w['name']=='m2'][0]")
[ "$c" = 70 ] && pass "the seed's env variable is the compute share" || fail "compute_pct $c"

# An MPS client's share is fixed at its start: a new one is shown as pending, not in force;
# the memory limit reaches it at once.
expect "set on an MPS client says when" 0 "MPS applies the compute share when the workload starts next" -- \
    gm set m1 --compute 45 --memory 2G
expect "ps: the share it runs with, then the pending one" 0 \
    '^m1 +0 +mps +30% \(45% at next start\) +2GiB +running ' -- gm ps m1
expect "JSON: in force and pending" 0 "^30 \['compute_pct'\]$" -- \
    sh -c "'$GPUMUX' ps m1 -o json | python3 -c \"import json,sys; w=json.load(sys.stdin)['workloads'][0]; print(w['in_force']['compute_pct'], w['pending'])\""

# Out-of-range percentages.
expect "percentage 101" 1 "active thread percentage: 101 is out of range" -- \
    gm mps start --gpu 0 --active-thread-percentage 101
expect "compute 0 on mps" 1 "compute: 0 is out of range" -- gm run bad --gpu 0 --compute 0 -- sleep 1
expect "env percentage 0" 1 "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: 0 is out of range" -- \
    gm run bad --gpu 0 --env CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=0 -- sleep 1
expect "env percentage abc" 1 "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE: 'abc'" -- \
    gm run bad --gpu 0 --env CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=abc -- sleep 1

# 48 clients fit; the 49th is refused.
for i in $(seq 3 48); do gm run "m$i" --gpu 0 -- sleep 300 >/dev/null || fail "client $i refused"; done
expect "49th client refused" 1 'already has 48 MPS clients' -- gm run m49 --gpu 0 -- sleep 300
gm delete m48 >/dev/null
expect "a freed slot takes a new client" 0 'm49' -- gm run m49 --gpu 0 -- sleep 300

# The control daemon killed: restarted, recorded, workloads still running.
kill -KILL "$cpid"
wait_for "control daemon restarted" 5 sh -c "$GPUMUX mps status -o json | grep -q '\"running\": true'"
npid=$(gm mps status -o json | json_get "[g['control_pid'] for g in d['gpus'] if g['index']==0][0]")
[ "$npid" != "$cpid" ] && kill -0 "$npid" && pass "new control daemon pid $npid" || fail "pid $npid"
expect "restart recorded" 0 "gpu/0 .*MPS control daemon \(pid $cpid\) died; restarted it" -- gm events
is_state m1 running && pass "workloads keep running" || fail "m1 is $(state_of m1)"

# Stop refuses while clients run, and names them; --force stops them.
expect "stop refused" 1 'would break the workloads running on it: m1, m2' -- gm mps stop --gpu 0
expect "mode change refused" 1 'would break' -- gm gpu mode 0 shared
# MPS on a VM's GPU is refused.
gm vm attach vmx --gpu 1 >/dev/null
expect "mps on a VM's GPU" 1 'held by VM vmx' -- gm mps start --gpu 1
expect "mps start without --gpu skips the VM's GPU" 0 'GPU 1 is held for VMs; skipped' -- gm mps start

# MPS survives the daemon: a SIGKILLed daemon finds it running, a "reboot" brings it back.
kill9_daemon
start_daemon || exit 1
p2=$(gm mps status -o json | json_get "[g['control_pid'] for g in d['gpus'] if g['index']==0][0]")
[ "$p2" = "$npid" ] && pass "control daemon kept across a daemon restart" || fail "pid $npid -> $p2"
kill9_daemon
kill -KILL "$p2"
wait_for "the control daemon is gone" 5 gone "$p2"
start_daemon || exit 1
wait_for "MPS back after a reboot" 5 sh -c "$GPUMUX mps status -o json | grep -q '\"running\": true'"
expect "start recorded" 0 'gpu/0 .*MPS control daemon' -- gm events

expect "stop --force" 0 'Stopped workloads: m1 m2' -- gm mps stop --gpu 0 --force
expect "shared again" 0 '^0 .* shared ' -- gm gpu ls
# ps MODE is the mode each workload ran under, not what its GPU's mode has become since.
expect "ps: the stopped clients ran under MPS" 0 '^m1 +0 +mps ' -- gm ps m1
is_state m1 stopped && pass "clients were stopped" || fail "m1 is $(state_of m1)"
[ "$(gm mps status -o json | json_get "[g['running'] for g in d['gpus'] if g['index']==0][0]")" = False ] &&
    pass "control daemon quit" || fail "control daemon survived stop"

# The MPS binary missing: a clear error, the GPU stays shared.
stop_daemon
start_daemon --mps-control /nonexistent/nvidia-cuda-mps-control
expect "binary missing" 1 'cannot start MPS.*/nonexistent/nvidia-cuda-mps-control: No such file' -- \
    gm mps start --gpu 0
expect "GPU stays shared" 0 '^0 .* shared ' -- gm gpu ls
finish
