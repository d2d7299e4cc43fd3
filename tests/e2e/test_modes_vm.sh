#!/usr/bin/env bash
# Sharing modes and VM claims: the claim-order table of the appliance, and mode changes that
# would break running workloads.
. "$(dirname "$0")/lib.sh"
start_daemon || exit 1
expect "gpu ls" 0 'shared' -- gm gpu ls

# Containers first, then a VM on the same GPU: the VM is refused and told who holds it.
gm run c1 --gpu 0 -- sleep 300 >/dev/null
expect "VM refused on a GPU in use" 1 'no GPU resources available: GPU 0 .* in use by workloads c1' -- \
    gm vm attach vm1 --gpu 0
# ...the other GPU is free for it.
expect "VM takes the free GPU" 0 'vm1' -- gm vm attach vm1 --gpu 1
expect "vm ls" 0 'vm1' -- gm vm ls
expect "workload refused on the VM's GPU" 1 'GPU 1 .* is held by VM vm1' -- gm run c2 --gpu 1 -- sleep 1
# Without an explicit GPU, placement goes around the VM.
gm run c3 -- sleep 300 >/dev/null
g=$(gm ps -o json | json_get "[w['gpus'][0]['index'] for w in d['workloads'] if w['name']=='c3'][0]")
[ "$g" = 0 ] && pass "placement avoids the VM's GPU" || fail "c3 placed on GPU $g"
expect "a second VM finds no GPU" 1 'no GPU resources available' -- gm vm attach vm2 --gpu 0
expect "a VM holds one GPU" 1 'VM vm1 already holds GPU 1' -- gm vm attach vm1 --gpu 0
expect "mode change on a VM's GPU refused" 1 'held by VM vm1' -- gm gpu mode 1 shared

# Mode changes that would break running workloads are refused and name them.
expect "mode change refused" 1 'would break the workloads running on it: c1, c3' -- gm gpu mode 0 mps
gm stop c1 c3 >/dev/null
wait_for "c1 stopped" 10 is_state c1 stopped
wait_for "c3 stopped" 10 is_state c3 stopped
expect "mode change once idle" 0 'mps' -- gm gpu mode 0 mps
# Two VMs take both GPUs: workloads then find none.
gm gpu mode 0 shared >/dev/null
expect "second VM" 0 'vm2' -- gm vm attach vm2 --gpu 0
expect "no GPU left for workloads" 1 'Insufficient nvidia.com/gpu: 0 of 2 GPUs' -- gm run c4 -- sleep 1
expect "stopped workload cannot start on a VM's GPU" 1 'held by VM vm2' -- gm start c1

# Claims survive a daemon restart, SIGKILL included.
kill9_daemon
start_daemon || exit 1
expect "VM claims survive" 0 'vm1.*|vm2.*' -- gm vm ls
[ "$(gm vm ls -o json | json_get "len(d['vms'])")" = 2 ] && pass "both VMs still hold their GPU" ||
    fail "VM claims lost"
expect "detach" 0 '' -- gm vm detach vm2
expect "GPU shared again" 0 'shared' -- gm gpu ls
expect "workload can use it again" 0 '' -- gm start c1
gm gpu ls -o json | json_get "[g['mode'] for g in d['gpus']]" | grep -q "'shared', 'vm'" &&
    pass "modes persisted" || fail "modes: $(gm gpu ls)"
finish
