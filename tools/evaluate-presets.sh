#!/usr/bin/env bash
# Scores every shipped preset on the held-out evaluation images (tools/eval-data.sh) against
# the baselines, and writes the tables into docs/presets-eval.md:
#   upscale presets: degraded as their recipe degrades (blur then bicubic), then percept vs
#     bicubic and GEGL's cubic, nohalo and lohalo (PSNR-Y, SSIM-Y, SWD);
#   reconstruct presets: Gaussian noise σ = 15, 25, 50 (JPEG presets, by their recipe's
#     degrade: JPEG quality 10, 20, 40), then percept vs the degraded input and GEGL's
#     denoise-dct (told σ, or for JPEG the artefacts' RMS), noise-reduction and bilateral-filter.
#   tools/evaluate-presets.sh      (needs a build in build/ or $BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
percept="$build/trainer/percept"
[ -d data/eval ] || tools/eval-data.sh >/dev/null
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"
out=docs/presets-eval.md
{
    echo "# Preset evaluation"
    echo
    echo "Made by \`tools/evaluate-presets.sh\` on $(date +%F) (commit $(git describe --always --dirty)),"
    echo "on the held-out images of \`tools/eval-data.sh\` (kodim02, kodim07, baboon, astronaut, chelsea,"
    echo "coffee: none of them is in the training data; the standard SR sets are not available offline)."
    echo "PSNR and SSIM on Y (BT.601; upscale crops \`scale\` border pixels), SWD ×10³ on RGB."
    for model in presets/*.safetensors; do
        [ -e "$model" ] || continue
        task=$("$percept" info "$model" | sed -n 's/^Task: *\([a-z]*\).*/\1/p')
        echo
        echo "## $(basename "$model" .safetensors) ($task)"
        echo
        case "$task" in
            upscale) "$percept" eval "$model" data/eval | sed 1,2d ;;
            reconstruct)
                recipe="presets/recipes/$(basename "$model" .safetensors).ini"
                if grep -q '^degrade *= *jpeg' "$recipe" 2>/dev/null; then
                    for q in 10 20 40; do
                        echo "JPEG quality $q:"
                        echo
                        "$percept" eval "$model" data/eval --degrade "jpeg:$q" | sed 1,2d
                        echo
                    done
                    continue
                fi
                for sigma in 15 25 50; do
                    echo "Gaussian noise σ = $sigma:"
                    echo
                    "$percept" eval "$model" data/eval --degrade "noise:$sigma" | sed 1,2d
                    echo
                done ;;
            *) echo "(no automatic evaluation for $task presets yet)" ;;
        esac
    done
} > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
