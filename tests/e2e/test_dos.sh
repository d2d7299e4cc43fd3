#!/usr/bin/env bash
# No denial of service by an unprivileged user: gpumux-other holds 2,000 idle connections to the
# API socket (and opens new ones as the daemon closes them); root and a member must still be
# answered within a second, the daemon's log must not grow by a line per connection, and once
# the attacker stops everything works. A client that sends half a request line is dropped
# after api_timeout.
source "$(dirname "$0")/lib.sh"

if [ "$(id -u)" != 0 ] || ! ensure_test_users || ! have_users; then
    log "skipped: needs root and the test users"
    exit 77
fi
OTHER_UID=$(id -u gpumux-other)
PY=/usr/bin/python3 # the system's: another user may not reach root's own interpreters

# The attacker runs the repository's copy, readable by every user.
FLOOD_PY="${GM_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/tools/flood.py"
mkdir -m 0777 "$T/flood"
chmod 0777 "$T/flood"

start_daemon || exit 1

# ms COMMAND...: runs COMMAND and prints how long it took, in milliseconds, and its status.
ms() {
    local t0 t1 rc
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    rc=$?
    t1=$(date +%s%N)
    echo "$(((t1 - t0) / 1000000)) $rc"
}

lines0=$(wc -l <"$T/daemon.log")
as_other "$PY" "$FLOOD_PY" "$GPUMUX_SOCKET" 2000 "$T/flood/status" "$T/flood/stop" &
FLOOD=$!
wait_for "the flood is under way" 20 test -s "$T/flood/status"
sleep 2

# The attacker opens 2,000 again every 0.5 s; what it still holds just before is what the daemon
# kept: the limit per user (32), the rest refused at once.
least=2000
for i in 1 2 3 4 5 6; do
    sleep 0.5
    n=$(awk '{print $2}' "$T/flood/status")
    [ "$n" -lt "$least" ] && least=$n
done
[ "$least" -le 40 ] && pass "the daemon keeps $least of the attacker's 2,000 connections" ||
    fail "the attacker keeps $least connections open"

for who in root member root member root; do
    if [ "$who" = root ]; then
        read -r t rc < <(ms gm ps)
    else
        read -r t rc < <(ms gm_member ps)
    fi
    if [ "$rc" = 0 ] && [ "$t" -lt 1000 ]; then
        pass "$who's ps answered in $t ms during the flood"
    else
        fail "$who's ps: status $rc after $t ms during the flood"
    fi
done
expect "a member may still change state" 0 "started" -- gm_member run m1 -- sleep 30
# Refused at once: the 503 that says why arrives unless the client gave up on the closed
# connection first.
out=$(gm_other ps 2>&1)
rc=$?
if [ "$rc" != 0 ] && grep -Eq "too many connections: uid $OTHER_UID holds [0-9]+ open connections|cannot reach|lost the connection" <<<"$out"; then
    pass "the attacker's own request over its limit is refused (status $rc)"
else
    fail "the attacker's request over its limit: status $rc: $out"
fi

sleep 1
lines1=$(wc -l <"$T/daemon.log")
grown=$((lines1 - lines0))
[ "$grown" -le 10 ] && pass "the daemon's log grew by $grown lines during the flood" ||
    fail "the daemon's log grew by $grown lines: $(tail -n 5 "$T/daemon.log")"
grep -Eq "refused [0-9]+ connections? of uid $OTHER_UID: uid $OTHER_UID holds" "$T/daemon.log" &&
    pass "the refusals are counted in a warning" ||
    fail "no warning about the refusals: $(tail -n 5 "$T/daemon.log")"

touch "$T/flood/stop"
wait "$FLOOD"
expect "after the flood, the attacker may read again" 0 "m1" -- gm_other ps
expect "after the flood, root works" 0 "m1" -- gm ps

# All users but root together: with api_max_connections 32 the attacker's 32 fill it, a member
# is refused, and root still gets through on its reserve.
stop_daemon
start_daemon --api-max-connections 32 || exit 1
as_other "$PY" "$FLOOD_PY" "$GPUMUX_SOCKET" 200 "$T/flood/status2" "$T/flood/stop2" &
FLOOD=$!
wait_for "the second flood is under way" 20 test -s "$T/flood/status2"
sleep 1
out=$(gm_member ps 2>&1)
rc=$?
if [ "$rc" != 0 ] && grep -Eq "too many connections: 32 connections are open, the limit \(api_max_connections\)|cannot reach|lost the connection" <<<"$out"; then
    pass "a member is refused once all users' connections are taken (status $rc)"
else
    fail "a member past api_max_connections: status $rc: $out"
fi
read -r t rc < <(ms gm ps)
[ "$rc" = 0 ] && [ "$t" -lt 1000 ] && pass "root's ps answered in $t ms on its reserve" ||
    fail "root's ps past api_max_connections: status $rc after $t ms"
touch "$T/flood/stop2"
wait "$FLOOD"

# A client that sends half a request line and waits is dropped after api_timeout.
stop_daemon
start_daemon --api-timeout 2 || exit 1
cat >"$T/slow.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"GET /v1/inf")
t0 = time.monotonic()
s.settimeout(30)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
print("%.1f" % (time.monotonic() - t0))
EOF
chmod 0644 "$T/slow.py"
waited=$(as_other "$PY" "$T/slow.py" "$GPUMUX_SOCKET")
if awk -v w="$waited" 'BEGIN { exit !(w >= 1.5 && w <= 6) }'; then
    pass "a half-sent request is dropped after ${waited} s (api_timeout 2)"
else
    fail "a half-sent request was dropped after ${waited} s, expected about 2"
fi
expect "ps after the slow client" 0 "m1" -- gm ps
finish
