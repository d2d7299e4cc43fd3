#!/usr/bin/env bash
# Every class of bad input gets a clear message and changes nothing.
. "$(dirname "$0")/lib.sh"

# No daemon running.
expect "no daemon" 2 "^gpumux: cannot reach gpumuxd at $T/run/gpumux.sock: " -- gm ps

start_daemon || exit 1
gm run keep --memory 8G -- sleep 300 >/dev/null
before_ps=$(gm ps -o json | json_get "sorted((w['name'], w['state']) for w in d['workloads'])")
before_ev=$(gm events -o json | json_get "len(d['events'])")

expect "unknown GPU" 1 'GPU 7: no such GPU' -- gm run a --gpu 7 -- sleep 1
expect "unknown GPU uuid" 1 'no such GPU' -- gm run a --gpu GPU-nope -- sleep 1
expect "compute 0" 1 "compute: 0 is out of range \(1..100\)" -- gm run a --compute 0 -- sleep 1
expect "compute 101" 1 "compute: 101 is out of range" -- gm run a --compute 101 -- sleep 1
expect "compute abc" 1 "compute: 'abc' is not a whole number" -- gm run a --compute abc -- sleep 1
expect "memory 12X" 1 "memory: '12X' is not a size" -- gm run a --memory 12X -- sleep 1
expect "memory larger than the GPU" 1 "memory limit 20GiB is larger than GPU 0's" -- \
    gm run a --gpu 0 --memory 20G -- sleep 1
expect "memory left on the GPU" 1 "GPU [01].*left for limits; 8GiB was asked" -- \
    gm run a --gpu "$(gm ps -o json | json_get "d['workloads'][0]['gpus'][0]['index']")" --memory 8G -- sleep 1
expect "duplicate name" 1 'workload keep already exists' -- gm run keep -- sleep 1
expect "missing command" 1 "command 'no-such-command-xyz' not found in PATH" -- \
    gm run a -- no-such-command-xyz
expect "bad name" 1 "workload 'a/b'" -- gm run a/b -- sleep 1
expect "bad restart policy" 2 "restart 'sometimes'" -- gm run a --restart sometimes -- sleep 1
expect "fraction on two GPUs" 1 'exactly one GPU' -- gm run a --gpu 0,1 --memory 1G -- sleep 1
expect "bad mode" 2 "mode 'turbo'" -- gm gpu mode 0 turbo
expect "unknown workload" 1 'no workload named nope' -- gm stop nope
expect "unknown VM" 1 'no VM named nope holds a GPU' -- gm vm detach nope

# Malformed requests straight to the API.
api() { # METHOD PATH BODY -> prints "STATUS BODY"
    python3 - "$GPUMUX_SOCKET" "$@" <<'PY'
import socket, sys
path, method, url, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
s = socket.socket(socket.AF_UNIX); s.connect(path)
s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (method.encode(), url.encode(), len(body), body))
data = b""
while True:
    c = s.recv(65536)
    if not c: break
    data += c
head, _, rest = data.partition(b"\r\n\r\n")
import json as j
try:
    body = j.dumps(j.loads(rest))
except ValueError:
    body = rest.decode()
print(head.split(b" ")[1].decode(), body)
PY
}
expect "malformed JSON" 0 '^400 .*malformed JSON in request body at line 1' -- api POST /v1/workloads '{"name": "x",'
expect "JSON that is not an object" 0 '^400 .*must be a JSON object' -- api POST /v1/workloads '[1,2]'
expect "unknown field" 0 "^400 .*unknown field 'colour'" -- api POST /v1/workloads '{"name":"x","command":["true"],"colour":"red"}'
expect "wrong type" 0 "^400 .*'command'" -- api POST /v1/workloads '{"name":"x","command":"true"}'
expect "unknown path" 0 '^404 .*no such API path' -- api GET /v1/nothing ''
expect "relative command path over the API" 0 "^400 .*relative path" -- api POST /v1/workloads '{"name":"x","command":["bin/true"]}'
expect "error body shape" 0 '"code": "invalid"' -- api POST /v1/gpus/0/mode '{"mode": 5}'
expect "bad mode over the API" 0 "^400 .*mode 'turbo': must be one of shared, mps, vm" -- api POST /v1/gpus/0/mode '{"mode": "turbo"}'
expect "bad restart over the API" 0 "^400 .*restart 'sometimes'" -- api POST /v1/workloads '{"name":"x","command":["true"],"restart":"sometimes"}'

# Input that was read two ways, straight to the API with curl.
curl_api() { # METHOD URL [curl options] -> prints "STATUS BODY-ON-ONE-LINE"
    local m=$1 u=$2
    shift 2
    curl -s -o "$T/curl.out" -w '%{http_code}' --unix-socket "$GPUMUX_SOCKET" -X "$m" "$@" \
        "http://localhost$u"
    printf ' %s\n' "$(tr -d '\n' <"$T/curl.out")"
}
expect "duplicate JSON member" 0 '^400 .*duplicate object key' -- \
    curl_api POST /v1/workloads -d '{"name":"dup","name":"dup2","command":["/bin/true"]}'
expect "%00 in a path" 0 '^400 .*control character or NUL \(%00\)' -- \
    curl_api POST /v1/workloads/keep%00x/stop
expect "newline in a path" 0 '^400 .*control character' -- curl_api GET /v1/workloads/ke%0Aep
expect "%00 in a query parameter" 0 "^400 .*since: '1.x' is not a whole number" -- \
    curl_api GET '/v1/events?since=1%00x'
expect "HEAD like GET, not 405" 0 '^200 HTTP/1.1 200 OK.*Content-Length: [1-9]' -- curl_api HEAD /v1/workloads -I
expect "HEAD has GET's length" 0 '^200 $' -- bash -c \
    "[ \"\$(curl -sI --unix-socket $GPUMUX_SOCKET http://localhost/v1/info | tr -d '\r' |
      sed -n 's/^Content-Length: //Ip')\" = \"\$(curl -s --unix-socket $GPUMUX_SOCKET http://localhost/v1/info | wc -c)\" ] &&
      echo '200 '"
expect "since=abc" 0 "^400 .*since: 'abc' is not a whole number" -- curl_api GET '/v1/events?since=abc'
expect "limit=-1" 0 '^400 .*limit: -1 is out of range' -- curl_api GET '/v1/events?limit=-1'
expect "overflowing offset" 0 "^400 .*offset: '99999999999999999999' is not a whole number" -- \
    curl_api GET '/v1/workloads/keep/logs?offset=99999999999999999999'
expect "unknown query parameter" 0 "^400 .*unknown query parameter 'limt'" -- \
    curl_api GET '/v1/events?limt=1'
expect "query parameter twice" 0 "^400 .*'since' is given more than once" -- \
    curl_api GET '/v1/events?since=1&since=2'
expect "hexadecimal size" 1 "memory: '0x10' is hexadecimal; give the size in decimal" -- \
    gm run hex --gpu 0 --memory 0x10 -- sleep 1
# Sizes as users write them: a bare number is refused with the unit it lacks, a limit below
# 64 MiB names the least, 50% is a percentage as ps prints it.
expect "bare 4096" 1 "memory '4096': a size needs a unit: did you mean 4096M\?" -- \
    gm run bare --gpu 0 --memory 4096 -- sleep 1
expect "bare 4" 1 "memory '4': a size needs a unit: did you mean 4G\?" -- \
    gm run bare --gpu 0 --memory 4 -- sleep 1
expect "too small" 1 "memory '4096B': too small; the least is 64MiB" -- \
    gm run tiny --gpu 0 --memory 4096B -- sleep 1
expect "too small by set" 1 "memory '1M': too small; the least is 64MiB" -- gm set keep --memory 1M
expect "too small as JSON bytes" 0 "^400 .*memory '4096B': too small; the least is 64MiB" -- \
    curl_api POST /v1/workloads --data '{"name": "b", "command": ["true"], "memory": 4096}' \
    -H 'Content-Type: application/json'
python3 -c 'import json; print(json.dumps({"name": "bigenv", "command": ["/bin/true"], "env": {"K": "x" * 200000}}))' >"$T/bigenv.json"
expect "oversized environment" 0 '^400 .*--env K is 200002 bytes; one variable \(NAME=value\) may be at most 131071 bytes' -- \
    curl_api POST /v1/workloads --data-binary "@$T/bigenv.json" -H 'Content-Type: application/json'

# A user outside the gpumux group may read but not change.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
    expect "nobody may read" 0 'keep' -- as_nobody "$GPUMUX" ps
    expect "nobody may not change" 1 'permission denied: user nobody \(uid 65534\) may only read.*group gpumux' -- \
        as_nobody "$GPUMUX" run intruder -- sleep 1
    expect "nobody may not stop" 1 'permission denied' -- as_nobody "$GPUMUX" stop keep
else
    log "skip: the group check needs root and setpriv"
fi

after_ps=$(gm ps -o json | json_get "sorted((w['name'], w['state']) for w in d['workloads'])")
after_ev=$(gm events -o json | json_get "len(d['events'])")
[ "$before_ps" = "$after_ps" ] && pass "refused requests changed no workload" ||
    fail "workloads changed: $before_ps -> $after_ps"
[ "$before_ev" = "$after_ev" ] && pass "refused requests recorded no event" ||
    fail "events changed: $before_ev -> $after_ev"

# GPU ids as CUDA and nvidia-smi take them: a UUID prefix, the short bus id, a list with blanks.
uuid0=$(gm gpu ls -o json | json_get "d['gpus'][0]['uuid']")
bus1=$(gm gpu ls -o json | json_get "d['gpus'][1]['pci_bus_id'].lstrip('0')")
expect "GPU by UUID prefix" 0 "" -- gm run byprefix --gpu "${uuid0:0:8}" -- sleep 30
expect "the prefix's GPU" 0 "^byprefix +0 " -- gm ps
expect "GPU by short bus id" 0 "" -- gm run bybus --gpu "$bus1" -- sleep 30
expect "the bus id's GPU" 0 "^bybus +1 " -- gm ps
expect "a list with a blank" 0 "" -- gm run bylist --gpu "0, 1" -- sleep 30
expect "both GPUs" 0 "^bylist +0,1 " -- gm ps
expect "unknown GPU lists the valid ones" 1 "GPU 7: no such GPU; .*\(GPUs: 0 \(GPU-.*\), 1 \(GPU-" -- \
    gm run a --gpu 7 -- sleep 1
expect "smi -i takes the same ids" 0 "" -- gm smi -i "${uuid0:0:8}"
gm delete byprefix bybus bylist >/dev/null

# The units users write, and a percentage as ps prints it, are taken.
for size in 4G:4GiB 4GiB:4GiB 4Gi:4GiB 4096M:4GiB 512Mi:512MiB; do
    gm set keep --memory "${size%%:*}" >/dev/null
    expect "size ${size%%:*}" 0 "^keep .* ${size#*:} " -- gm ps
done
gm set keep --memory 8G >/dev/null
expect "compute 50%" 0 "" -- gm set keep --compute 50%
expect "ps shows 50%" 0 "^keep .* 50% " -- gm ps

# A daemon that does not answer (stopped): the client gives up after --timeout with its own
# exit status, and says a change may still be carried out, which it then is.
kill -STOP "$DAEMON_PID"
t0=$(date +%s%N)
expect "stopped daemon: a change times out" 3 \
    "^gpumux: the daemon at $T/run/gpumux.sock did not answer within 1 s \(stopped or overloaded\?\); a change you asked for may still be carried out: check with 'gpumux ps'" -- \
    gm --timeout 1 stop keep
took=$((($(date +%s%N) - t0) / 1000000))
[ "$took" -lt 5000 ] && pass "gave up after ${took} ms" || fail "took ${took} ms to give up"
expect "stopped daemon: a read times out, timeout from the environment" 3 \
    'did not answer within 1 s \(stopped or overloaded\?\)$' -- env GPUMUX_TIMEOUT=1 "$GPUMUX" ps
expect "stopped daemon: --timeout after the verb" 3 'did not answer within 0.5 s' -- \
    gm ps --timeout 0.5
kill -CONT "$DAEMON_PID"
# Whether the abandoned stop is carried out depends on whether the daemon read it before the
# client gave up (here it did not: a request whose client has closed is dropped unread).
wait_for "the resumed daemon answers" 10 gm ps && pass "the daemon answers after it resumed"
st=$(state_of keep)
case $st in running | stopped) pass "keep is $st, not left half-stopped" ;;
*) fail "keep is $st after the abandoned stop" ;; esac
expect "bad --timeout" 2 "--timeout '-1': expected seconds from 0" -- gm --timeout -1 ps

# State directory problems stop the daemon with a clear message and touch nothing.
stop_daemon
cp "$T/state/state.db" "$T/good.db"
sqlite3 "$T/state/state.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null 2>&1
printf 'this is not a database, it is garbage %.0s' $(seq 1 200) >"$T/state/state.db"
rm -f "$T/state/state.db-wal" "$T/state/state.db-shm"
sum=$(md5sum <"$T/state/state.db")
expect "corrupt database refused" 1 "state.db" -- "$GPUMUXD" --driver sim \
    --log-dir "$T/logs" --state-dir "$T/state" --run-dir "$T/run" --gpusim-state "$GPUSIM_STATE"
[ "$sum" = "$(md5sum <"$T/state/state.db")" ] && pass "corrupt database left untouched" ||
    fail "corrupt database was modified"
touch "$T/afile"
expect "state dir under a file" 1 "cannot start: .*$T/afile" -- "$GPUMUXD" --driver sim \
    --log-dir "$T/logs" --state-dir "$T/afile/state" --run-dir "$T/run2" --gpusim-state "$GPUSIM_STATE"
expect "bad option" 2 "unknown setting 'bogus'" -- "$GPUMUXD" --bogus 1
expect "bad driver" 2 "not one of auto, nvml, sim" -- "$GPUMUXD" --driver cuda
finish
