#!/usr/bin/env bash
# Screenshots of the plug-in's dialogs for docs/: GIMP 2.10 under Xvfb opens each dialog
# (Script-Fu, RUN-INTERACTIVE) on a sample image, xwd grabs the dialog's window.
# Needs: xvfb, x11-apps (xwd), netpbm (xwdtopnm, pnmtopng), gimp; a built tree (BUILD, build/).
#   tools/gimp-screenshots.sh [OUTDIR]        # default docs/images
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD:-build}" out="${1:-docs/images}"
for tool in Xvfb xwd xwdtopnm pnmtopng gimp-2.10; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install xvfb x11-apps netpbm gimp)" >&2; exit 1; }
done
tmp="$(mktemp -d)"
Xvfb -displayfd 3 -screen 0 1400x1000x24 3>"$tmp/display" >/dev/null 2>&1 &
xvfb=$!
for _ in $(seq 50); do [ -s "$tmp/display" ] && break; sleep 0.1; done
display=":$(cat "$tmp/display")"
trap 'kill $xvfb 2>/dev/null; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/profile" "$tmp/plug-ins/percept-gimp" "$tmp/presets" "$out"
ln -s "$PWD/$build/plugin/percept-gimp" "$tmp/plug-ins/percept-gimp/percept-gimp"
printf '(plug-in-path "%s:%s")\n' "$tmp/plug-ins" "$(pkg-config --variable=gimplibdir gimp-2.0)/plug-ins" > "$tmp/profile/gimprc"
cp presets/*.safetensors "$tmp/presets/" 2>/dev/null || true
export GIMP2_DIRECTORY="$tmp/profile" DISPLAY=$display PERCEPT_PRESET_PATH="$tmp/presets"
export GEGL_PATH="$PWD/$build/ops:$(pkg-config --variable=pluginsdir gegl-0.4)"
# untrained stand-ins for the presets that are not trained yet, so every dialog has a list
[ -f "$tmp/presets/starry-night.safetensors" ] || "$build/trainer/percept" init johnson --base 8 --blocks 1 "$tmp/presets/starry-night.safetensors" >/dev/null
[ -f "$tmp/presets/denoise.safetensors" ] || "$build/trainer/percept" init restore --channels 8 --blocks 1 "$tmp/presets/denoise.safetensors" >/dev/null
# a photograph when the evaluation images are there (tools/eval-data.sh), else a plasma
if [ -f data/eval/kodim07.png ]; then
    gegl data/eval/kodim07.png -o "$tmp/sample.png" -- gegl:crop x=150 y=100 width=480 height=320 2>/dev/null
else
    gegl -o "$tmp/sample.png" -x "<gegl><node operation='gegl:crop' width='480' height='320'/><node operation='gegl:plasma' seed='7' width='512' height='512'/></gegl>" 2>/dev/null
fi

shoot() {  # shoot PROCEDURE "ARGS" TITLE FILE
    setsid gimp-2.10 -n -d -f -s --batch-interpreter plug-in-script-fu-eval -b \
        "(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$tmp/sample.png\" \"$tmp/sample.png\")))
                (drawable (car (gimp-image-get-active-drawable image))))
           ($1 RUN-INTERACTIVE image drawable $2))" >/dev/null 2>&1 &
    local gimp=$! shot=""
    for _ in $(seq 60); do
        sleep 2
        if xwd -silent -name "$3" > "$tmp/shot.xwd" 2>/dev/null; then shot=1; sleep 4; xwd -silent -name "$3" > "$tmp/shot.xwd"; break; fi
    done
    # GIMP and its plug-ins (its own process group: setsid)
    kill -- -$gimp 2>/dev/null || true; sleep 2; kill -9 -- -$gimp 2>/dev/null || true
    wait $gimp 2>/dev/null || true
    if [ -z "$shot" ]; then  # keep what the screen showed, to see why
        xwd -silent -root | xwdtopnm 2>/dev/null | pnmtopng > "$tmp/../percept-screen-$4"
        echo "no '$3' window appeared (the screen: $tmp/../percept-screen-$4)" >&2; return 1
    fi
    xwdtopnm "$tmp/shot.xwd" 2>/dev/null | pnmtopng > "$out/$4"
    echo "wrote $out/$4"
}
# one GIMP per dialog, each with its own X server and profile (a second GIMP started in
# the same session never showed its window)
case "${SHOT:-all}" in
    upscale) shoot plug-in-percept-upscale '2 "" 0 0' "Percept Upscale" gimp-upscale.png ;;
    stylize) shoot plug-in-percept-stylize '"" 1.0 0 1.0 0' "Percept Stylize" gimp-stylize.png ;;
    reconstruct) shoot plug-in-percept-reconstruct '"" 1.0 0 0' "Percept Reconstruct" gimp-reconstruct.png ;;
    all) for s in upscale stylize reconstruct; do SHOT=$s "$0" "$out"; done ;;
esac
