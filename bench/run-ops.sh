#!/usr/bin/env bash
# The GEGL operations on large images: wall time and peak RSS per case, each in its own
# process (bench/ops-run renders the whole output, no file I/O), next to GEGL's own cubic
# enlargement of the same image as the reference for what the pipeline itself costs.
# Records bench/results/ops-DATE.md.
#
#   bench/run-ops.sh            # all cases (about 10 minutes on 2 cores)
#   QUICK=1 bench/run-ops.sh    # small sizes, a smoke run
#
# Networks are untrained ones of the presets' architectures (speed does not depend on the
# weights). The 16384² case uses a narrow network: it measures memory, which must stay under
# 2 GiB, with GEGL's tile cache at 512 MiB (GEGL_CACHE_SIZE; the rest swaps to disk) and
# percept's tile budget at 512 MiB (PERCEPT_TILE_MEMORY_MB).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
[ -f "$build/build.ninja" ] || meson setup "$build" >/dev/null
ninja -C "$build" >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"
export GEGL_SWAP="$work/swap"
percept="$build/trainer/percept"
"$percept" init sr-shuffle --scale 2 "$work/up2.safetensors" >/dev/null
"$percept" init johnson "$work/style.safetensors" >/dev/null
"$percept" init sr-shuffle --scale 2 --channels 8 --blocks 1 "$work/narrow2.safetensors" >/dev/null

if [ -n "${QUICK:-}" ]; then big=(800 600) sty=512 huge=2048; else big=(4000 3000) sty=2048 huge=16384; fi
source bench/blas-env.sh
run() { env "${blas_env[@]}" "$build/bench/ops-run" "$@"; }
out="bench/results/ops-$(date +%F).md"
{
    echo "# GEGL operations benchmark, $(date +%F)"
    echo
    echo "- machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- commit: $(git describe --always --dirty)"
    echo "- command: \`bench/run-ops.sh\` (\`env ${blas_env[*]}\`; OpenMP threads: ${OMP_NUM_THREADS:-all cores})"
    [ -z "$blas_note" ] || echo "- BLAS kernel: $blas_note"
    echo "- input: a synthetic checkerboard, rendered through a GeglProcessor (no file decoding or encoding)"
    echo
    echo '```'
    run percept:upscale "${big[@]}" model="$work/up2.safetensors"
    run gegl:scale-ratio "${big[@]}" x=2 y=2 sampler=cubic
    run percept:stylize "$sty" "$sty" model="$work/style.safetensors"
    GEGL_CACHE_SIZE=512 PERCEPT_TILE_MEMORY_MB=512 run percept:upscale "$huge" "$huge" model="$work/narrow2.safetensors"
    GEGL_CACHE_SIZE=512 run gegl:scale-ratio "$huge" "$huge" x=2 y=2 sampler=cubic
    echo '```'
    echo
    echo "Networks: upscale ×2 = \`percept init sr-shuffle --scale 2\` (64 channels, 4 residual blocks,"
    echo "pixel shuffle); stylize = \`percept init johnson\` (Johnson et al., base 32, 5 blocks, instance"
    echo "norm: one statistics pass, then tiles); the ${huge}² case: \`sr-shuffle --scale 2 --channels 8"
    echo "--blocks 1\`, GEGL_CACHE_SIZE=512, PERCEPT_TILE_MEMORY_MB=512. Goal: that case under 2048 MiB."
} > "$work/result.md"
mv "$work/result.md" "$out"
chmod 644 "$out"
cat "$out"
