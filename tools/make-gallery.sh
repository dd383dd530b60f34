#!/usr/bin/env bash
# docs/gallery.md and its images: crops of the evaluation images (tools/eval-data.sh), made
# small (×1/2, box filter), then enlarged again ×2 by GEGL's cubic and lohalo samplers and by
# the upscale-x2 preset; and the other presets on the same crops when they are shipped.
#   tools/make-gallery.sh     (needs a build in build/ or $BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
[ -d data/eval ] || tools/eval-data.sh >/dev/null
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"
export PERCEPT_PRESET_PATH="$PWD/presets"
img=docs/images/gallery
mkdir -p "$img"
# g IN OUT OPERATION… : a gegl chain, saved as an 8-bit PNG (GEGL saves 16 bits otherwise)
g() { local in=$1 out=$2; shift 2; gegl "$in" -o "$out" -- "$@" gegl:convert-format "format=R'G'B' u8" 2>/dev/null; }
{
    echo "# Gallery"
    echo
    echo "Made by \`tools/make-gallery.sh\` from the held-out evaluation images. Each crop was made"
    echo "half as large (box filter), then enlarged ×2 again: GEGL's cubic and lohalo samplers, and"
    echo "\`percept:upscale\` with the shipped \`upscale-x2\` preset. The original is on the right."
    echo
    echo "| GEGL cubic | GEGL lohalo | percept:upscale | original |"
    echo "|---|---|---|---|"
    for spec in "kodim07 280 220" "kodim02 350 120" "baboon 180 40" "astronaut 170 40"; do
        set -- $spec
        name=$1 x=$2 y=$3
        g "data/eval/$name.png" "$img/$name-original.png" gegl:crop x=$x y=$y width=128 height=128
        g "$img/$name-original.png" "$img/$name-small.png" gegl:scale-ratio x=0.5 y=0.5 sampler=linear
        for s in cubic lohalo; do
            g "$img/$name-small.png" "$img/$name-$s.png" gegl:scale-ratio x=2 y=2 sampler=$s abyss-policy=clamp
        done
        g "$img/$name-small.png" "$img/$name-percept.png" percept:upscale
        echo "| ![](images/gallery/$name-cubic.png) | ![](images/gallery/$name-lohalo.png) | ![](images/gallery/$name-percept.png) | ![](images/gallery/$name-original.png) |"
    done
} > docs/gallery.md.tmp
rm -f "$img"/*-small.png
mv docs/gallery.md.tmp docs/gallery.md
echo "wrote docs/gallery.md"
