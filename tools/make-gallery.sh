#!/usr/bin/env bash
# docs/gallery.md and its images, from 128² crops of the held-out evaluation images
# (tools/eval-data.sh):
#   ×2, ×4 and ×8: the crop reduced (box filter), then enlarged again by GEGL's cubic and lohalo
#     samplers and by percept:upscale with the shipped upscale-x2 / -x4 / -x8 preset (and
#     upscale-x4-sharp);
#   denoise: Gaussian noise σ 25 (percept degrade, as evaluation adds it), then GEGL's
#     denoise-dct told σ and percept:reconstruct with the denoise preset;
#   jpeg: saved by libjpeg at quality 20 (percept degrade), then percept:reconstruct
#     model=jpeg;
#   styles: three evaluation images, 192 px wide, through percept:stylize with each shipped
#     style, beside the painting (tools/style-images.sh).
# A section appears when its preset is shipped.
#   tools/make-gallery.sh     (needs a build in build/ or $BUILD)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
percept="$build/trainer/percept"
[ -d data/eval ] || tools/eval-data.sh >/dev/null
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"
export PERCEPT_PRESET_PATH="$PWD/presets"
img=docs/images/gallery
mkdir -p "$img"
# g IN OUT OPERATION… : a gegl chain, saved as an 8-bit PNG (GEGL saves 16 bits otherwise);
# gegl's chatter (it reports GEGL's own leaks on stdout) stays out of the page
g() { local in=$1 out=$2; shift 2; gegl "$in" -o "$out" -- "$@" gegl:convert-format "format=R'G'B' u8" >/dev/null 2>&1; }
crops=("kodim07 280 220" "kodim02 350 120" "baboon 180 40" "astronaut 170 40")
cell() { echo -n "| ![](images/gallery/$1.png) "; }
upscale_section() {
    local scale=$1 sharp=
    [ -f presets/upscale-x$scale-sharp.safetensors ] && sharp=upscale-x$scale-sharp
    echo "## ×$scale"
    echo
    echo "Each crop made $scale times smaller (box filter), then enlarged ×$scale again: GEGL's cubic"
    echo "and lohalo samplers, and \`percept:upscale scale=$scale\` with the shipped \`upscale-x$scale\`"
    [ -n "$sharp" ] && echo "preset and with \`model=$sharp\`."
    [ -z "$sharp" ] && echo "preset."
    echo "The original is on the right."
    echo
    echo "| GEGL cubic | GEGL lohalo | percept:upscale |${sharp:+ model=$sharp |} original |"
    echo "|---|---|---|${sharp:+---|}---|"
    for spec in "${crops[@]}"; do
        set -- $spec
        local name=$1 small="$img/$1-small.png"
        g "$img/$name-original.png" "$small" gegl:scale-ratio x=$(python3 -c "print(1/$scale)") \
            y=$(python3 -c "print(1/$scale)") sampler=linear
        for s in cubic lohalo; do
            g "$small" "$img/$name-x$scale-$s.png" gegl:scale-ratio x=$scale y=$scale sampler=$s abyss-policy=clamp
        done
        g "$small" "$img/$name-x$scale-percept.png" percept:upscale scale=$scale
        cell $name-x$scale-cubic; cell $name-x$scale-lohalo; cell $name-x$scale-percept
        if [ -n "$sharp" ]; then
            g "$small" "$img/$name-x$scale-sharp.png" percept:upscale scale=$scale model=$sharp
            cell $name-x$scale-sharp
        fi
        cell $name-original
        echo "|"
    done
    echo
}
{
    echo "# Gallery"
    echo
    echo "Made by \`tools/make-gallery.sh\` from 128² crops of the held-out evaluation images (none is"
    echo "in the training data)."
    echo
    for spec in "${crops[@]}"; do
        set -- $spec
        g "data/eval/$1.png" "$img/$1-original.png" gegl:crop x=$2 y=$3 width=128 height=128
    done
    for scale in 2 4 8; do
        [ -f presets/upscale-x$scale.safetensors ] && upscale_section $scale
    done
    if [ -f presets/denoise.safetensors ]; then
        echo "## Denoise"
        echo
        echo "Gaussian noise of σ 25 (of 255) added as the evaluation adds it (\`percept degrade\`), then"
        echo "GEGL's \`denoise-dct\` told σ and \`percept:reconstruct\` with the shipped blind \`denoise\` preset."
        echo
        echo "| noisy | GEGL denoise-dct | percept:reconstruct | original |"
        echo "|---|---|---|---|"
        for spec in "${crops[@]}"; do
            set -- $spec
            "$percept" degrade "$img/$1-original.png" "$img/$1-tmp.png" --degrade noise:25 >/dev/null
            g "$img/$1-tmp.png" "$img/$1-noisy.png"
            g "$img/$1-noisy.png" "$img/$1-denoise-dct.png" gegl:denoise-dct sigma=25
            g "$img/$1-noisy.png" "$img/$1-denoise-percept.png" percept:reconstruct model=denoise
            cell $1-noisy; cell $1-denoise-dct; cell $1-denoise-percept; cell $1-original
            echo "|"
        done
        echo
    fi
    if [ -f presets/jpeg.safetensors ]; then
        echo "## JPEG artefacts"
        echo
        echo "Saved by libjpeg at quality 20 (\`percept degrade --degrade jpeg:20\`), then"
        echo "\`percept:reconstruct model=jpeg\`."
        echo
        echo "| JPEG quality 20 | percept:reconstruct | original |"
        echo "|---|---|---|"
        for spec in "${crops[@]}"; do
            set -- $spec
            "$percept" degrade "$img/$1-original.png" "$img/$1-tmp.png" --degrade jpeg:20 >/dev/null
            g "$img/$1-tmp.png" "$img/$1-q20.png"
            g "$img/$1-q20.png" "$img/$1-jpeg-percept.png" percept:reconstruct model=jpeg
            cell $1-q20; cell $1-jpeg-percept; cell $1-original
            echo "|"
        done
        echo
    fi
    styles=()
    for s in starry-night the-scream great-wave composition-viii; do
        [ -f presets/$s.safetensors ] && styles+=("$s")
    done
    if [ ${#styles[@]} -gt 0 ]; then
        [ -d data/styles ] || tools/style-images.sh >/dev/null
        photos=(kodim07 astronaut chelsea)
        echo "## Styles"
        echo
        echo "\`percept:stylize model=NAME\` at full strength on evaluation images 192 px wide; the"
        echo "painting each style was trained on is on the left."
        echo
        printf '| painting '; printf '| %s ' "${photos[@]}"; echo "|"
        echo "|---|---|---|---|"
        echo -n "| (the photos) "
        for p in "${photos[@]}"; do
            g "data/eval/$p.png" "$img/$p-192.png" gegl:scale-size-keepaspect x=192 y=-1 sampler=cubic
            cell $p-192
        done
        echo "|"
        for s in "${styles[@]}"; do
            g "$(ls data/styles/$s.*)" "$img/style-$s.png" gegl:scale-size-keepaspect x=192 y=-1 sampler=cubic
            cell style-$s
            for p in "${photos[@]}"; do
                g "$img/$p-192.png" "$img/$p-$s.png" percept:stylize model=$s
                cell $p-$s
            done
            echo "|"
        done
        echo
    fi
} > docs/gallery.md.tmp
rm -f "$img"/*-small.png "$img"/*-tmp.png
mv docs/gallery.md.tmp docs/gallery.md
echo "wrote docs/gallery.md"
