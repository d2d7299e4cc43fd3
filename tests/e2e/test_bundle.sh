#!/usr/bin/env bash
# The GPU bundle (make gpu-bundle) is self-contained: unpacked in a fresh directory, in a mount
# namespace where the system's copies of every bundled library are hidden (an empty file bound
# over each), every program resolves all its libraries inside the bundle or to glibc's, and
# device-check.sh --gpusim starts the daemon on the bundle's gpusim, runs the sample and the other
# checks, and writes its results file.
. "$(dirname "$0")/lib.sh"
A=$B/gpumux-gpu-bundle.tar.gz
if ! command -v unshare >/dev/null || [ "$(id -u)" != 0 ]; then
    log "skip: hiding the system's libraries needs root and unshare"
    exit 77
fi
# The sanitizer build makes no bundle: its programs would need the sanitizer runtimes.
if [ ! -f "$A" ] && grep -q '^GM_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
    log "skip: the sanitizer build makes no GPU bundle"
    exit 77
fi
[ -f "$A" ] || { fail "no bundle at $A (built with the tree: ninja gpu-bundle)"; finish; exit; }
size=$(stat -c %s "$A")
[ "$size" -le $((60 << 20)) ] && pass "bundle is $((size >> 10)) KiB (at most 60 MiB)" ||
    fail "bundle is $((size >> 10)) KiB, over 60 MiB"
mkdir -p "$T/u" && tar -C "$T/u" -xzf "$A" || { fail "unpack"; finish; exit; }
U=$T/u/gpumux-gpu-bundle
grep -q '^alloc_until_full: ' "$U/MANIFEST.txt" && pass "the manifest says whether alloc_until_full is in" ||
    fail "manifest: $(head -n 5 "$U/MANIFEST.txt")"
[ ! -e "$U/lib/libcuda.so.1" ] && [ ! -e "$U/lib/libnvidia-ml.so.1" ] && [ -e "$U/lib/gpusim/libcuda.so.1" ] &&
    pass "the driver libraries are gpusim's only, in lib/gpusim" || fail "driver libraries outside lib/gpusim: $(ls "$U/lib")"

# The system's copies of the bundled libraries, as the loader would find them.
: >"$T/empty"
hide=$(for f in "$U"/lib/*.so*; do
    n=${f##*/}
    for p in $(ldconfig -p | awk -v n="$n" '$1 == n {print $NF}') /usr/lib/x86_64-linux-gnu/"$n" /lib/x86_64-linux-gnu/"$n"; do
        [ -e "$p" ] && readlink -f "$p"
    done
done | sort -u)
[ -n "$hide" ] && pass "$(wc -w <<<"$hide") system libraries to hide" || fail "found none of the bundled libraries on the system"
elfs=$(find "$U/bin" "$U/lib" "$U/tests" -type f ! -name '*.sh' ! -name '*.py' ! -name '*.c' ! -name '*.cu')
export U T hide elfs
unshare -m --propagation private bash -c '
    for p in $hide; do mount --bind "$T/empty" "$p" || exit 3; done
    for p in $hide; do [ -s "$p" ] && { echo "still visible: $p"; exit 3; }; done
    for f in $elfs; do
        ldd "$f" 2>&1 | sed "s|^|${f#$U/}: |"
    done >"$T/ldd.txt"
    unset GM_BUILD_DIR
    timeout 300 bash "$U/tests/gpu/device-check.sh" --gpusim "$T/out" >"$T/check.log" 2>&1
    echo $? >"$T/check.rc"
'
rc=$?
[ "$rc" = 0 ] && pass "the system copies were hidden" || fail "mount namespace: status $rc"
bad=$(grep -E 'not found|=> /' "$T/ldd.txt" | grep -vE "=> $U/|=> /lib/x86_64-linux-gnu/(libc|libm|libpthread|libdl|librt|libresolv)\.so|=> /usr/lib/x86_64-linux-gnu/(libc|libm|libpthread|libdl|librt|libresolv)\.so")
[ -s "$T/ldd.txt" ] && [ -z "$bad" ] && pass "every program resolves its libraries in the bundle or glibc's ($(wc -l <"$T/ldd.txt") ldd lines)" ||
    fail "libraries not from the bundle: $bad"
grep -Eq "^bin/gpumuxd: .*libjansson.so.4 => $U/(bin/\.\./)?lib/libjansson.so.4" "$T/ldd.txt" && pass "gpumux finds the bundled jansson" ||
    fail "jansson: $(grep jansson "$T/ldd.txt" | head -n 2)"
grep -Eq 'libfyaml.so.0 => '"$U"'/lib/gpusim/../libfyaml.so.0|libfyaml.so.0 => '"$U"'/lib/libfyaml.so.0' "$T/ldd.txt" &&
    pass "gpusim's libraries find the bundled libfyaml" || fail "libfyaml: $(grep fyaml "$T/ldd.txt" | head -n 3)"

R=$T/out/results.txt
[ -f "$R" ] && pass "device-check.sh --gpusim wrote results.txt (status $(cat "$T/check.rc"))" ||
    fail "no results file: $(tail -n 20 "$T/check.log")"
for c in daemon inventory solo timeslice mps mps-split mem-sample mem-runtime caps cumem torch; do
    grep -Eq "^(pass|fail|skip) +$c " "$R" || fail "no line for $c in results.txt"
done
for c in daemon inventory solo timeslice mps mem-sample cumem; do
    grep -Eq "^pass +$c " "$R" && pass "check $c passes on gpusim" || fail "check $c: $(grep -E " $c " "$R")"
done
grep -q '^# gpu: ' "$R" && grep -q '^# driver: ' "$R" && pass "results name the GPU and the driver" ||
    fail "no GPU name or driver in results"
[ -f "$T/out/daemon.log" ] && pass "the daemon's log is kept beside the results" || fail "no daemon.log"
left=$(for p in /proc/[0-9]*; do
    { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -q "^GM_GPU_TAG=/tmp/gm-gpu" && echo "${p#/proc/}"
done)
[ -z "$left" ] && pass "device-check.sh stopped everything it started" || fail "left running: $left"
[ "$FAILS" -gt 0 ] && { cat "$R" >&2; tail -n 20 "$T/check.log" >&2; }
finish
