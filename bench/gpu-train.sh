#!/usr/bin/env bash
# gpu-train.sh TASK RECIPE [SECONDS] -- trains a recipe on the GPU machine in about SECONDS
# (default 300) and leaves the weights, checkpoint, training log and CSV under $OUT.
#   device: run command "bash bench/gpu-train.sh upscale bench/gpu-train.ini 300",
#   carry ["data/device"] (tools/device-data.sh makes it here)
# The machine has no GEGL: the photos travel as JPEG and become PPM there (Pillow), which
# percept built without GEGL reads. A 40-step probe measures the speed; the run's steps are
# set from it so the cosine learning-rate schedule ends when the time does. Ctrl-C (the
# timeout's SIGINT) still leaves a checkpoint: `percept eval OUT.ckpt` and `--resume` work
# with it here.
set -uo pipefail
cd "$(dirname "$0")/.."
task=${1:?task}
recipe=${2:?recipe}
budget=${3:-300}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
source tools/device/env.sh
if [ ! -x build-gpu/trainer/percept ]; then
    { meson setup build-gpu -Dcuda=enabled -Dgegl=disabled -Dgimp=disabled --buildtype=release &&
        ninja -C build-gpu; } > "$OUT/train-build.log" 2>&1 || { tail -30 "$OUT/train-build.log"; exit 1; }
fi
export PERCEPT_CUDA_LIBRARY="$PWD/build-gpu/kernels/libpercept-cuda.so"
export PERCEPT_DEVICE=${PERCEPT_DEVICE:-cuda}
photos=/tmp/percept-photos
python3 - data/device "$photos" <<'PY' || exit 1
import os, sys
from PIL import Image
src, dst = sys.argv[1:3]
os.makedirs(dst, exist_ok=True)
names = sorted(n for n in os.listdir(src) if n.endswith(".jpg"))
for n in names:
    Image.open(os.path.join(src, n)).convert("RGB").save(os.path.join(dst, n[:-4] + ".ppm"))
print(f"{len(names)} photos as PPM in {dst}")
PY
percept=build-gpu/trainer/percept
name=$(basename "$recipe" .ini)
work=/tmp/percept-train
mkdir -p "$work"
"$percept" train "$task" --recipe "$recipe" --data "$photos" --out "$work/probe.safetensors" \
    --steps 40 --validate-every 0 --val-fraction 0 > "$OUT/train-probe.log" 2>&1
rate=$(grep -oE "[0-9.]+ steps/s" "$OUT/train-probe.log" | tail -1 | cut -d' ' -f1)
[ -n "$rate" ] || { echo "probe failed:"; tail -20 "$OUT/train-probe.log"; exit 1; }
# a tenth of the time for loading, validations and the final evaluation
steps=$(awk -v r="$rate" -v b="$budget" 'BEGIN { s = int(r * b * 0.9 / 100) * 100; print s < 100 ? 100 : s }')
echo "probe: $rate steps/s on $PERCEPT_DEVICE; training $steps steps"
out="$work/$name.safetensors"
timeout -s INT $((budget + 120)) "$percept" train "$task" --recipe "$recipe" --data "$photos" \
    --out "$out" --steps "$steps" > "$OUT/train.log" 2>&1
echo "train rc=$?"
grep -E "val PSNR|wrote|percept train:" "$OUT/train.log" | tail -12
for f in "$out" "$out.ckpt" "$out.csv"; do [ -f "$f" ] && cp "$f" "$OUT/"; done
ls -la "$OUT"
