#!/usr/bin/env bash
# The daemon is killed with SIGKILL at many points of a busy run and started again. Afterwards
# the database is consistent, live workloads are re-adopted, dead ones are marked exited, and
# no workload ever ran twice at once or was started twice.
. "$(dirname "$0")/lib.sh"
ROUNDS=${GM_CRASH_ROUNDS:-40}
mkdir -p "$T/starts"
start_daemon || exit 1

# Each workload appends to its own file when it starts: the count of lines is the count of starts.
once_cmd='echo "$$" >>'"$T"'/starts/$GPUMUX_WORKLOAD; sleep 0.3'
long_cmd='echo "$$" >>'"$T"'/starts/$GPUMUX_WORKLOAD; exec sleep 1000'

client_once() { # creates run-once workloads, never starts them again
    local i=0
    while [ ! -f "$T/stop-clients" ]; do
        i=$((i + 1))
        gm run "once-$i" --restart never -- sh -c "$once_cmd" >/dev/null 2>&1
        sleep 0.05
    done
}
client_long() { # creates long workloads, stops, starts and deletes them
    local i=0 n
    while [ ! -f "$T/stop-clients" ]; do
        i=$((i + 1))
        n=$(( (i % 8) + 1 ))
        case $((i % 4)) in
        0) gm run "long-$n" --memory 1G -- sh -c "$long_cmd" >/dev/null 2>&1 ;;
        1) gm stop "long-$n" >/dev/null 2>&1 ;;
        2) gm start "long-$n" >/dev/null 2>&1 ;;
        3) [ $((i % 12)) = 3 ] && gm delete "long-$n" >/dev/null 2>&1 ;;
        esac
        sleep 0.03
    done
}
client_once &
c1=$!
client_long &
c2=$!

for r in $(seq 1 "$ROUNDS"); do
    sleep "0.$((RANDOM % 6 + 1))"
    kill9_daemon
    start_daemon || { fail "daemon did not come back in round $r"; break; }
done
touch "$T/stop-clients"
wait "$c1" "$c2"
kill9_daemon
start_daemon || exit 1
# Run-once workloads finish and are recorded: nothing starting or stopping, and every record
# that says running has a live process.
settled() {
    gm ps -o json | python3 -c '
import json, os, sys
ws = json.load(sys.stdin)["workloads"]
busy = [w["name"] for w in ws if w["state"] in ("starting", "stopping")]
dead = [w["name"] for w in ws if w["state"] == "running" and not os.path.exists("/proc/%d" % (w.get("pid") or 0))]
sys.exit(1 if busy or dead else 0)'
}
wait_for "records settle" 15 settled

# 1. The database is consistent.
ic=$(sqlite3 "$T/state/state.db" 'PRAGMA integrity_check;' 2>&1)
[ "$ic" = ok ] && pass "integrity_check ok" || fail "integrity_check: $ic"

# 2. Every workload process alive belongs to a record that says it runs, with that pid, and no
#    record has two live processes.
# A run-once workload may end while this looks (its record says running a moment longer than
# its process lives): a problem counts only when it is still there after the daemon has polled
# again, so the check is repeated a few times until it finds none.
check() {
gm ps -o json >"$T/ps.json"
python3 - "$T" <<'PY' >"$T/check.txt"
import json, os, sys
T = sys.argv[1]
ws = {w["name"]: w for w in json.load(open(T + "/ps.json"))["workloads"]}
alive = {}
for p in os.listdir("/proc"):
    if not p.isdigit():
        continue
    try:
        env = open(f"/proc/{p}/environ", "rb").read().split(b"\0")
        comm = open(f"/proc/{p}/comm").read().strip()
    except OSError:
        continue
    if f"GM_E2E_TAG={T}".encode() not in env or comm == "gpumux-monitor":
        continue
    names = [e[len(b"GPUMUX_WORKLOAD="):].decode() for e in env if e.startswith(b"GPUMUX_WORKLOAD=")]
    stat = open(f"/proc/{p}/stat").read()
    ppid_comm = None
    if names and comm == "sleep" or names and comm == "sh":
        alive.setdefault(names[0], set()).add(int(p))
problems = []
for name, pids in alive.items():
    w = ws.get(name)
    # a workload is one process group: sh may have exec'd sleep, count distinct process groups
    pgids = {os.getpgid(p) for p in pids if os.path.exists(f"/proc/{p}")}
    if w is None:
        problems.append(f"{name}: processes {sorted(pids)} run but no record exists")
    elif w["state"] not in ("running", "starting", "stopping"):
        problems.append(f"{name}: processes {sorted(pids)} run but the record says {w['state']}")
    elif len(pgids) > 1:
        problems.append(f"{name}: {len(pgids)} instances run at once: {sorted(pids)}")
    elif w["pid"] not in pgids:
        problems.append(f"{name}: record pid {w['pid']} is not the live one {sorted(pgids)}")
for name, w in ws.items():
    if w["state"] == "running" and name not in alive:
        problems.append(f"{name}: recorded running (pid {w['pid']}) but no process is alive")
# 3. Starts: run-once workloads started at most once; nothing started without a record.
for f in os.listdir(T + "/starts"):
    n = len(open(f"{T}/starts/{f}").read().split())
    if f.startswith("once-"):
        if n > 1:
            problems.append(f"{f}: started {n} times")
        if f not in ws:
            problems.append(f"{f}: ran but has no record")
        elif ws[f]["state"] != "exited" or ws[f]["exit_code"] not in (0, None):
            problems.append(f"{f}: state {ws[f]['state']} exit {ws[f]['exit_code']} after it ran")
print(f"{len(ws)} records, {len(alive)} live workloads, {len(os.listdir(T + '/starts'))} started")
for p in problems:
    print("PROBLEM", p)
PY
! grep -q PROBLEM "$T/check.txt"
}
for i in 1 2 3 4 5 6; do
    check && break
    sleep 0.5
done
cat "$T/check.txt" >&2
if grep -q PROBLEM "$T/check.txt"; then fail "invariants after $ROUNDS SIGKILLs"; else
    pass "invariants hold after $ROUNDS SIGKILLs"; fi
n_once=$(ls "$T/starts" | grep -c '^once-')
[ "$n_once" -ge 10 ] && pass "the run was busy ($n_once run-once workloads)" ||
    fail "only $n_once run-once workloads were created"
finish
