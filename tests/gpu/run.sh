#!/usr/bin/env bash
# Real-GPU checks from a build tree (ctest label gpu): tests/gpu/device-check.sh over GM_BUILD_DIR,
# its results in GM_GPU_OUT (default a temporary directory, printed). Skips (exit 77) with a
# message where there is no GPU.
set -u
: "${GM_BUILD_DIR:?GM_BUILD_DIR must point at the build directory}"
OUT=${GM_GPU_OUT:-$(mktemp -d /tmp/gm-gpu-results.XXXXXX)}
echo "results in $OUT/results.txt"
exec bash "$(dirname "$0")/device-check.sh" "$OUT"
