#!/usr/bin/env bash
# Scores every shipped preset on the held-out evaluation images (tools/eval-data.sh) against
# the baselines, and writes the tables into docs/presets-eval.md:
#   upscale presets: degraded as their recipe degrades (blur then bicubic), then percept (one
#     pass and the self-ensemble of 8 orientations) vs bicubic and GEGL's cubic, nohalo and
#     lohalo (PSNR-Y, SSIM-Y, SWD);
#   reconstruct presets: Gaussian noise σ = 15, 25, 50 (JPEG presets, by their recipe's
#     degrade: JPEG quality 10, 20, 40), then percept (one pass and the self-ensemble) vs
#     the degraded input and GEGL's denoise-dct (told σ, or for JPEG the artefacts' RMS),
#     noise-reduction and bilateral-filter;
#   stylize presets: Johnson et al.'s Fig. 5 check (percept eval-style): the network's
#     objective on two held-out images against 50, 100 and 300 optimisation iterations.
#   tools/evaluate-presets.sh [NAME...]   (needs a build in build/ or $BUILD; with names,
#                                          only their sections are made again)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
percept="$build/trainer/percept"
[ -d data/eval ] || tools/eval-data.sh >/dev/null
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"
out=docs/presets-eval.md
styles="$(mktemp -d)"
trap 'rm -rf "$styles"' EXIT
cp data/eval/kodim07.png data/eval/chelsea.png "$styles/"
models=()
for name in "$@"; do models+=("presets/$name.safetensors"); done
[ $# -gt 0 ] || models=(presets/*.safetensors)
{
    echo "# Preset evaluation"
    echo
    echo "Made by \`tools/evaluate-presets.sh\` on $(date +%F) (commit $(git describe --always --dirty)),"
    echo "on the held-out images of \`tools/eval-data.sh\` (kodim02, kodim07, baboon, astronaut, chelsea,"
    echo "coffee: none of them is in the training data; the standard SR sets are not available offline)."
    echo "PSNR and SSIM on Y (BT.601; upscale crops \`scale\` border pixels), SWD ×10³ on RGB."
    for model in "${models[@]}"; do
        [ -e "$model" ] || continue
        task=$("$percept" info "$model" | sed -n 's/^Task: *\([a-z]*\).*/\1/p')
        echo
        echo "## $(basename "$model" .safetensors) ($task)"
        echo
        [ $# -eq 0 ] || { echo "(this section: $(date +%F), commit $(git describe --always --dirty))"; echo; }
        case "$task" in
            upscale) "$percept" eval "$model" data/eval --self-ensemble | sed 1,2d ;;
            reconstruct)
                recipe="presets/recipes/$(basename "$model" .safetensors).ini"
                if grep -q '^degrade *= *jpeg' "$recipe" 2>/dev/null; then
                    for q in 10 20 40; do
                        echo "JPEG quality $q:"
                        echo
                        "$percept" eval "$model" data/eval --degrade "jpeg:$q" --self-ensemble | sed 1,2d
                        echo
                    done
                    continue
                fi
                for sigma in 15 25 50; do
                    echo "Gaussian noise σ = $sigma:"
                    echo
                    "$percept" eval "$model" data/eval --degrade "noise:$sigma" --self-ensemble | sed 1,2d
                    echo
                done ;;
            stylize)
                echo "Johnson et al.'s Fig. 5 check: the objective of the preset's recipe (its losses and"
                echo "painting) on kodim07 and chelsea at 128 px, for one pass of the network against"
                echo "optimising the image itself (Adam from noise, as Gatys et al.) with the same losses:"
                echo
                "$percept" eval-style "$model" --images "$styles" --iterations 50,100,300 --size 128 ;;
            *) echo "(no automatic evaluation for $task presets yet)" ;;
        esac
    done
} > "$out.tmp"
if [ $# -gt 0 ] && [ -f "$out" ]; then
    # splice: each new "## NAME (task)" section replaces its namesake, or is appended
    python3 - "$out" "$out.tmp" <<'PY'
import re, sys
def sections(text):
    parts = re.split(r"(?m)^(?=## )", text)
    return parts[0], {p.split("\n", 1)[0]: p for p in parts[1:]}, [p.split("\n", 1)[0] for p in parts[1:]]
head, old, order = sections(open(sys.argv[1]).read())
_, new, new_order = sections(open(sys.argv[2]).read())   # the old page's heading stays
old.update(new)
order += [k for k in new_order if k not in order]
open(sys.argv[2], "w").write(head + "".join(old[k].rstrip("\n") + "\n\n" for k in order).rstrip("\n") + "\n")
PY
fi
mv "$out.tmp" "$out"
cat "$out"
