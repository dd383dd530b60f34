#!/usr/bin/env bash
# One device call does a GPU session's work: build percept on the GPU machine (no GEGL, no
# package registry: cJSON comes from tools/device/debs), run the test suite, run the CPU
# benchmark against PyTorch 2.11 on the same machine, and leave logs under $OUT.
# (The CUDA backend's parity tests and GPU benchmarks join this script when kernels/ lands.)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PATH=/opt/torch/.venv/bin:$PATH
deps=/tmp/percept-deps
mkdir -p "$deps"
for d in tools/device/debs/*.deb; do dpkg -x "$d" "$deps"; done
pc="$deps/usr/lib/x86_64-linux-gnu/pkgconfig/libcjson.pc"
sed -i "s|=/usr/|=$deps/usr/|" "$pc"
export PKG_CONFIG_PATH="$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nproc; } > "$OUT/machine.txt" 2>&1
meson setup build-gpu -Dgegl=disabled -Dgimp=disabled --buildtype=release > "$OUT/setup.log" 2>&1 ||
    { tail -20 "$OUT/setup.log"; exit 1; }
ninja -C build-gpu > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
meson test -C build-gpu --print-errorlogs > "$OUT/test.log" 2>&1
echo "tests rc=$?"
grep -E "^(Ok|Fail|Skipped):" "$OUT/test.log"
PERCEPT_PYTHON="$(command -v python3)" build-gpu/bench/cpu-forward --threads "$(nproc)" \
    --sizes 512,1024 | tee "$OUT/cpu-forward.md"
