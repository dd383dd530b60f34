#!/usr/bin/env bash
# percept train and eval on binary PPM photos, the one format a percept built without GEGL
# reads (the GPU machine's build; with GEGL the same run goes through GEGL's PPM loader):
# a short run writes its weights, checkpoints, log, preview and loss plot; eval scores the
# result; a file that is no image among the photos is skipped with its name.
set -u
percept="$1"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-train-ppm.$$"
mkdir -p "$tmp/photos"
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/expect.sh"

# photo K: W×H, smooth gradients with a stripe pattern, 8-bit P6
photo() {
    local k=$1 w=$2 h=$3
    { printf 'P6\n%d %d\n255\n' "$w" "$h"
      LC_ALL=C awk -v k="$k" -v w="$w" -v h="$h" 'BEGIN {
          for (y = 0; y < h; y++) for (x = 0; x < w; x++) {
              r = int(255 * x / w); g = int(255 * y / h); b = ((x + k * y) % 7 < 3) ? 200 : 40
              printf "%c%c%c", r, g, b } }'
    } > "$tmp/photos/p$k.ppm"
}
for k in 1 2 3 4; do photo $k 96 80; done
printf 'not an image' > "$tmp/photos/broken.ppm"

out="$tmp/sr.safetensors"
expect train 0 "wrote .*sr.safetensors \(6 steps\)" -- "$percept" train upscale --data "$tmp/photos" \
    --out "$out" --channels 8 --blocks 1 --steps 6 --batch 2 --crop 32 --validate-every 3 \
    --val-images 1 --val-fraction 0.25 --checkpoint-every 3
expect train-skips-broken 0 "skipped .*broken.ppm" -- "$percept" train upscale --data "$tmp/photos" \
    --out "$tmp/again.safetensors" --channels 8 --blocks 1 --steps 1 --batch 2 --crop 32 \
    --val-fraction 0
for f in "$out" "$out.ckpt" "$out.adam" "$out.csv"; do
    expect "exists-$(basename "$f")" 0 "" -- test -s "$f"
done
expect preview 0 "preview\.(png|ppm)" -- ls "$tmp"
expect loss-plot 0 "loss\.(png|ppm)" -- ls "$tmp"
rm "$tmp/photos/broken.ppm"
expect eval 0 "\| bicubic \| [0-9.]+ \|" -- "$percept" eval "$out" "$tmp/photos"
expect eval-self-ensemble 0 '"percept self-ensemble": \{"psnr_y": [0-9.]+' -- "$percept" eval "$out" "$tmp/photos" --self-ensemble --json

# the same training on the CUDA backend: the host-emulated one (tests/fake-cuda) where it was
# built, the second argument; the trainer says where it runs, the losses agree, and its steps
# keep to the GPU: the fake runtime's count of the host's touches of GPU memory (each would
# migrate pages on a GPU) is the same for 4 steps as for 8 — setting up and saving only
if [ -n "${2:-}" ]; then
    train_on() {
        FAKE_CUDA_REPORT=1 PERCEPT_DEVICE=$1 PERCEPT_CUDA_LIBRARY="$2" "$percept" train upscale \
            --data "$tmp/photos" --out "$tmp/$1.safetensors" --channels 8 --blocks 1 \
            --steps "${3:-4}" --batch 2 --crop 32 --val-fraction 0 --losses "l1=1;ssim=0.2" 2>&1
    }
    touches() { sed -n 's/^fake CUDA: the host touched GPU memory \([0-9]*\) times$/\1/p'; }
    last_loss() { tr '\r' '\n' | sed -n 's/^step 4\/4 .* loss \([0-9.]*\).*/\1/p'; }
    cpu_log=$(train_on cpu "$2") gpu_log=$(train_on cuda "$2")
    expect cpu-says-so 0 "parameters on the CPU" -- echo "$cpu_log"
    expect gpu-says-so 0 "parameters on the GPU \(CUDA\)" -- echo "$gpu_log"
    expect gpu-same-losses 0 "^same [0-9]" -- awk -v a="$(echo "$cpu_log" | last_loss)" \
        -v b="$(echo "$gpu_log" | last_loss)" \
        'BEGIN { d = a - b; if (d < 0) d = -d; print (a > 0 && d <= 1e-4 * a ? "same " : "differ ") a " " b }'
    longer_log=$(train_on cuda "$2" 8)
    expect gpu-steps-stay-on-gpu 0 "^touches [0-9]+ [0-9]+ same" -- awk \
        -v a="$(echo "$gpu_log" | touches)" -v b="$(echo "$longer_log" | touches)" \
        'BEGIN { print "touches " a " " b " " (a != "" && a == b ? "same" : "differ") }'
fi

echo "test-train-ppm: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
