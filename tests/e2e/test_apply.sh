#!/usr/bin/env bash
# gpumux apply -f / delete -f / get / describe through a real daemon: a Kubernetes file of a
# Job, a Pod and a Deployment whose containers run as processes (no image), applied as one;
# applied again unchanged (nothing restarted); the Deployment scaled up and down; a file one of
# whose workloads cannot be placed changes nothing and names it; the seed's Jobs (with their
# image) are refused with a clear message; a native file; delete -f leaves nothing behind.
. "$(dirname "$0")/lib.sh"
start_daemon || exit 1
M="$T/manifests"
mkdir -p "$M"

cat >"$M/k8s.yaml" <<'YAML'
apiVersion: batch/v1
kind: Job
metadata:
  name: sample1
spec:
  backoffLimit: 1
  template:
    spec:
      hostPID: true
      hostIPC: true
      restartPolicy: Never
      containers:
      - name: nbody
        command: ["/bin/sh"]
        args: ["-c", "echo NVD=$NVIDIA_VISIBLE_DEVICES; sleep 0.2"]
        env:
        - name: NVIDIA_VISIBLE_DEVICES
          value: "0"
---
apiVersion: v1
kind: Pod
metadata:
  name: trainer
  labels:
    app: trainer
spec:
  containers:
  - name: main
    command: ["/bin/sleep", "300"]
    resources:
      limits:
        nvidia.com/gpu: 1
        gpumux.dev/compute: 30
        gpumux.dev/memory: 1Gi
        cpu: "2"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: srv
        command: ["/bin/sleep", "300"]
YAML

expect "apply creates every object's workloads" 0 'workload/web-1 created' -- gm apply -f "$M/k8s.yaml"
wait_for "sample1 completes" 10 is_state sample1 exited
is_state trainer running && is_state web-0 running && is_state web-1 running &&
    pass "the Pod and both replicas run" || fail "states: $(gm ps)"
expect "the Job saw its GPU" 0 "NVD=GPU-" -- gm logs sample1
lim=$(gm ps -o json | json_get "[(w['compute_pct'], w['memory_limit']) for w in d['workloads'] if w['name']=='trainer'][0]")
[ "$lim" = "(30, 1073741824)" ] && pass "the Pod's gpumux.dev limits are its workload's" ||
    fail "trainer limits: $lim"
expect "get jobs" 0 '^job/sample1 +Job +0/1 +1 +0 +kubernetes +1' -- gm get jobs
expect "get pods shows the phase" 0 'sample1 +job/sample1 +Completed' -- gm get pods
expect "get deployments" 0 '^deployment/web +Deployment +2/2' -- gm get deployments
expect "describe names what is not enforced" 0 'resources.limits.cpu' -- gm describe pod/trainer
expect "describe shows labels as not enforced" 0 'metadata.labels' -- gm describe pod/trainer

# Applied again unchanged: nothing restarted.
pid_before=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='web-0'][0]")
expect "re-apply changes nothing" 0 'workload/web-0 unchanged' -- gm apply -f "$M/k8s.yaml"
pid_after=$(gm ps -o json | json_get "[w['pid'] for w in d['workloads'] if w['name']=='web-0'][0]")
[ -n "$pid_before" ] && [ "$pid_before" = "$pid_after" ] && pass "re-apply restarted nothing (pid $pid_after)" ||
    fail "web-0 pid $pid_before -> $pid_after"

# Scaled from 2 to 3: one more; back to 1: two go.
sed 's/replicas: 2/replicas: 3/' "$M/k8s.yaml" >"$M/k8s3.yaml"
out=$(gm apply -f "$M/k8s3.yaml" 2>&1)
grep -q 'workload/web-2 created' <<<"$out" && grep -q '^1 created, 4 unchanged, 0 deleted' <<<"$out" &&
    pass "scaled to 3: one replica started" || fail "scale up: $out"
sed 's/replicas: 2/replicas: 1/' "$M/k8s.yaml" >"$M/k8s1.yaml"
out=$(gm apply -f "$M/k8s1.yaml" 2>&1)
grep -q 'workload/web-1 deleted' <<<"$out" && grep -q 'workload/web-2 deleted' <<<"$out" &&
    grep -q '^0 created, 3 unchanged, 2 deleted' <<<"$out" && pass "scaled to 1: two replicas deleted" || fail "scale down: $out"
gm ps -o json | json_get "sorted(w['name'] for w in d['workloads'] if w['name'].startswith('web'))" |
    grep -qx "\['web-0'\]" && pass "web-0 alone is left" || fail "web replicas: $(gm ps)"

# All or nothing: GPU 1 has 15109 MiB; two 10Gi workloads on it cannot both be admitted.
cat >"$M/big.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: big-a}
spec:
  containers:
  - name: c
    command: ["/bin/sleep", "300"]
    env: [{name: NVIDIA_VISIBLE_DEVICES, value: "1"}]
    resources: {limits: {gpumux.dev/memory: 10Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: big-b}
spec:
  containers:
  - name: c
    command: ["/bin/sleep", "300"]
    env: [{name: NVIDIA_VISIBLE_DEVICES, value: "1"}]
    resources: {limits: {gpumux.dev/memory: 10Gi}}
YAML
expect "a file that does not fit is refused, naming the workload" 1 'Pod/big-b' -- gm apply -f "$M/big.yaml"
gm ps -o json | json_get "[w['name'] for w in d['workloads'] if w['name'].startswith('big')]" |
    grep -qx '\[\]' && pass "nothing of the refused file was created" || fail "half applied: $(gm ps)"
expect "dry run says what would be done" 0 'workload/big-a created on .* \(dry run\)' -- \
    gm apply -f - --dry-run <<<"$(sed -n '1,/^---$/p' "$M/big.yaml" | sed '$d')"
gm ps -o json | json_get "[w['name'] for w in d['workloads'] if w['name'].startswith('big')]" |
    grep -qx '\[\]' && pass "a dry run creates nothing" || fail "dry run created: $(gm ps)"

# The seed's Jobs carry an image: refused until containers run, saying why.
cat >"$M/seed.yaml" <<'YAML'
apiVersion: batch/v1
kind: Job
metadata:
  name: cuda-sample1
spec:
  backoffLimit: 1
  template:
    spec:
      hostPID: true
      hostIPC: true
      containers:
      - name: nbody
        image: nvidia/samples:nbody
        command: ["/tmp/nbody"]
        args: ["-benchmark", "-i=1000"]
        env:
        - name: NVIDIA_VISIBLE_DEVICES
          value: "0"
      restartPolicy: Never
YAML
expect "an image is refused with the reason" 1 'Job/cuda-sample1.*image nvidia/samples:nbody.*podman' -- \
    gm apply -f "$M/seed.yaml"

# A native file, then delete -f for both files: nothing of them is left.
cat >"$M/native.yaml" <<'YAML'
apiVersion: gpumux.dev/v1
kind: Workload
metadata: {name: native1}
spec:
  command: ["/bin/sleep", "300"]
  gpu: "1"
  compute: 20
YAML
expect "a native manifest" 0 'workload/native1 created' -- gm apply -f "$M/native.yaml"
wait_for "native1 runs" 5 is_state native1 running
expect "get workloads" 0 '^workload/native1 +workload +1/1' -- gm get workloads
expect "delete -f" 0 'workload/native1 deleted' -- gm delete -f "$M/native.yaml"
expect "delete -f of the Kubernetes file" 0 'workload/trainer deleted' -- gm delete -f "$M/k8s1.yaml"
left=$(gm ps -o json | json_get "len(d['workloads'])")
[ "$left" = 0 ] && pass "delete -f left no workload" || fail "left: $(gm ps)"
deps=$(gm get all -o json | json_get "len(d)")
[ "$deps" = 0 ] && pass "and no deployment record" || fail "deployments left: $(gm get all)"
expect "describe of a deleted object" 1 'nothing applied is named job/sample1' -- gm describe job/sample1

# A daemon killed with SIGKILL while it launches what a file created loses nothing: the file's
# records were committed as one before the first launch, so after the restart either all 30
# are there (each running once, none twice) or, killed before the commit, none.
for i in $(seq 1 30); do
    printf 'apiVersion: gpumux.dev/v1\nkind: Workload\nmetadata: {name: k%d}\nspec:\n  command: [/bin/sleep, "%s"]\n  gpu: none\n---\n' \
        "$i" "30$$"
done >"$M/kill.yaml"
gm apply -f "$M/kill.yaml" >/dev/null 2>&1 &
apply_pid=$!
sleep 0.3
kill9_daemon
wait "$apply_pid" 2>/dev/null
start_daemon || exit 1
n=$(gm ps -o json | json_get "len([w for w in d['workloads'] if w['name'].startswith('k')])")
if [ "$n" = 30 ]; then
    all_run() { [ "$(gm ps -o json | json_get "len([w for w in d['workloads'] if w['name'].startswith('k') and w['state']=='running'])")" = 30 ]; }
    wait_for "all 30 run after the restart" 20 all_run && pass "all 30 of the file were kept and run"
    procs=$(pgrep -fc "^/bin/sleep 30$$\$" || true)
    [ "$procs" = 30 ] && pass "each runs once: 30 processes, none twice" || fail "$procs processes for 30 workloads"
elif [ "$n" = 0 ]; then
    pass "killed before the commit: nothing of the file was kept"
else
    fail "a SIGKILL mid-apply kept $n of 30 workloads"
fi
gm delete -f "$M/kill.yaml" >/dev/null 2>&1
left=$(pgrep -fc "^/bin/sleep 30$$\$" || true)
[ "$left" = 0 ] && pass "delete -f stopped every one of them" || fail "$left left running"

# Bad input names the file.
printf 'apiVersion: v1\nkind: Service\nmetadata: {name: s}\n' >"$M/svc.yaml"
expect "an unknown kind is refused" 1 'svc.yaml.*Service' -- gm apply -f "$M/svc.yaml"
expect "a missing file" 2 'no-such.yaml' -- gm apply -f "$M/no-such.yaml"
expect "apply without -f" 2 '-f FILE is required' -- gm apply
finish
