#!/usr/bin/env bash
# gpu-bundle.sh BUILD_DIR SOURCE_DIR ARCHIVE: packs what the real-GPU checks need into one
# archive for a machine that has an NVIDIA driver and none of our packages (docs/gpu-check.md).
# Every shared library the programs need is copied into lib/, except glibc's, which stay the
# system's, and the driver's (libcuda.so.1, libnvidia-ml.so.1), which must be the target's.
set -eu
B=$1 S=$2 OUT=$3
STAGE=$B/gpu-bundle.d
D=$STAGE/gpumux-gpu-bundle
rm -rf "$STAGE"
mkdir -p "$D/bin" "$D/lib/gpusim" "$D/tests/gpu"

cp "$B/bin/gpumuxd" "$B/bin/gpumux" "$B/bin/gpumux-monitor" "$B/bin/gpusimctl" \
    "$B/bin/gpumux-sample" "$D/bin/"
cp "$B/lib/libgpumux.so" "$D/lib/"
cp "$B/lib/gpusim/libnvidia-ml.so.1" "$B/lib/gpusim/libcuda.so.1" \
    "$B/lib/gpusim/nvidia-cuda-mps-control" "$B/lib/gpusim/nvidia-cuda-mps-server" "$D/lib/gpusim/"
cp "$B/tests/gm-cumem-probe" "$D/tests/"
cp "$S/tests/gpu/device-check.sh" "$S/tests/gpu/torch_matmul.py" "$S/tests/gpu/alloc_until_full.cu" \
    "$S/tests/gpu/cumem_probe.c" "$D/tests/gpu/"
if [ -x "$B/tests/alloc_until_full" ]; then
    cp "$B/tests/alloc_until_full" "$D/tests/"
    alloc="tests/alloc_until_full (nvcc $(/usr/local/cuda/bin/nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' || true), static cudart)"
else
    alloc="absent: nvcc was not found at build time; the CUDA runtime check is skipped"
fi

# glibc's libraries stay the system's; the driver's are never carried.
is_system() {
    case $1 in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux*.so.* | \
        libresolv.so.* | libutil.so.* | libanl.so.* | linux-vdso.so.*) return 0 ;;
    libcuda.so.* | libnvidia-ml.so.*) return 0 ;;
    esac
    return 1
}
elfs=$(find "$D/bin" "$D/lib" "$D/tests" -type f ! -name '*.sh' ! -name '*.py' ! -name '*.c' \
    ! -name '*.cu')
for f in $elfs; do
    ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
    is_system "$name" && continue
    [ -e "$D/lib/$name" ] || cp -L "$path" "$D/lib/$name"
done
missing=$(for f in $elfs; do ldd "$f" 2>/dev/null | grep 'not found' || true; done)
if [ -n "$missing" ]; then
    echo "gpu-bundle: unresolved libraries at build time: $missing" >&2
    exit 1
fi

{
    echo "gpumux GPU bundle, built $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), glibc $(ldd --version | sed -n '1s/.* //p')"
    echo "source: $(git -C "$S" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "alloc_until_full: $alloc"
    echo "run: tests/gpu/device-check.sh OUT_DIR   (or --gpusim OUT_DIR on a machine without a GPU)"
    echo "files:"
    (cd "$D" && find . -type f | sort | sed 's|^\./|  |')
} >"$D/MANIFEST.txt"
tar -C "$STAGE" -czf "$OUT" gpumux-gpu-bundle
echo "gpu-bundle: $OUT, $(du -k "$OUT" | cut -f1) KiB; alloc_until_full: $alloc"
