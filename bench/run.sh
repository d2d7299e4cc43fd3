#!/usr/bin/env bash
# Runs the benchmarks; paste what it prints into docs/benchmarks.md with the machine it ran on.
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
here=$(dirname "$0")
echo "== daemon (gpusim) =="
python3 "$here/bench_daemon.py" "$B"

echo "== apply -f (gpusim) =="
python3 "$here/bench_apply.py" "$B"

echo "== MPS versus time-slicing (gpusim model) =="
python3 "$here/bench_mps.py" "$B"

echo "== interposer (gpusim) =="
"$B/bin/bench_interpose" "$B"
