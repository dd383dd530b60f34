#!/usr/bin/env bash
# The GIMP 2.10 plug-in in GIMP's batch mode (gimp-console, Script-Fu): each procedure on an
# RGB image, an RGBA layer and a greyscale image, with a selection, and with an invalid model
# (an error status, the image unchanged); results compared with the same operation run by
# the gegl command.
# Arguments: the percept command, the plug-in executable. GEGL_PATH comes from meson.
set -u
percept="$1" plugin="$2"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-gimp.$$"
mkdir -p "$tmp/profile" "$tmp/plug-ins/percept-gimp"
trap 'rm -rf "$tmp"' EXIT
console=$(command -v gimp-console-2.10 || command -v gimp-console || true)
[ -n "$console" ] || { echo "no gimp-console (Debian package gimp): skipped"; exit 77; }
command -v gegl >/dev/null || { echo "no gegl command: skipped"; exit 77; }
. "$(dirname "$0")/expect.sh"
# (under tools/sanitize.sh the GEGL module is built with ASan: see test-ops.sh)
gegl() { timeout 120 env ${PERCEPT_SANITIZER_PRELOAD:+LD_PRELOAD="$PERCEPT_SANITIZER_PRELOAD"} gegl "$@"; }

# a private GIMP profile whose plug-in path has this build's plug-in and GIMP's own
ln -s "$plugin" "$tmp/plug-ins/percept-gimp/percept-gimp"
system_plugins=$(pkg-config --variable=gimplibdir gimp-2.0 2>/dev/null || echo /usr/lib/gimp/2.0)/plug-ins
printf '(plug-in-path "%s:%s")\n' "$tmp/plug-ins" "$system_plugins" > "$tmp/profile/gimprc"
export GIMP2_DIRECTORY="$tmp/profile"
gimp() { timeout 300 "$console" -i -d -f -n --batch-interpreter plug-in-script-fu-eval -b "$1" -b '(gimp-quit 0)' 2>&1; }

size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(26); w,h=struct.unpack(">II", d[16:24]); print("%dx%d %s" % (w, h, {0:"grey",2:"rgb",4:"grey-alpha",6:"rgba"}.get(d[25], "?")))' "$1"; }
psnr() { "$percept" compare "$1" "$2" --json | python3 -c 'import json,sys; v=json.load(sys.stdin)["psnr"]; print("inf" if v is None else "%.1f" % v)'; }
at_least() { python3 -c 'import sys; v=sys.argv[1]; print("ok" if v == "inf" or float(v) >= float(sys.argv[2]) else "low %s" % v)' "$1" "$2"; }

"$percept" init sr --scale 2 --channels 8 --blocks 1 "$tmp/sr2.safetensors" >/dev/null
"$percept" init johnson --base 8 --blocks 1 "$tmp/style.safetensors" >/dev/null
"$percept" init restore --channels 8 --blocks 1 "$tmp/restore.safetensors" >/dev/null
plasma() { gegl -o "$1" -x "<gegl><node operation='gegl:crop' width='61' height='43'/><node operation='gegl:plasma' seed='$2' width='128' height='128'/></gegl>" -- gegl:convert-format format="$3" 2>/dev/null; }
plasma "$tmp/rgb.png" 1 "R'G'B' u8"
plasma "$tmp/grey.png" 2 "Y' u8"
gegl "$tmp/rgb.png" -o "$tmp/rgba.png" -- gegl:color-to-alpha color=black 2>/dev/null

# Script-Fu: load, run a procedure (errors caught), save the active drawable
run() {  # run IN OUT "(plug-in-percept-… RUN-NONINTERACTIVE image drawable …)" [selection]
    gimp "(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE \"$1\" \"$1\")))
                 (drawable (car (gimp-image-get-active-drawable image))))
            ${4:-}
            (if (catch #f $3 #t) (gimp-message \"procedure ok\") (gimp-message \"procedure failed\"))
            (set! drawable (car (gimp-image-get-active-drawable image)))
            (file-png-save2 RUN-NONINTERACTIVE image drawable \"$2\" \"$2\" 0 9 0 0 0 0 0 0 0)
            (gimp-image-delete image))"
}

expect upscale-runs 0 "procedure ok" -- run "$tmp/rgb.png" "$tmp/g-up.png" "(plug-in-percept-upscale RUN-NONINTERACTIVE image drawable 2 \"$tmp/sr2.safetensors\" 0 0)"
expect upscale-size 0 "^122x86 rgb$" -- size "$tmp/g-up.png"
gegl "$tmp/rgb.png" -o "$tmp/e-up.png" -- percept:upscale model="$tmp/sr2.safetensors" 2>/dev/null
gegl "$tmp/e-up.png" -o "$tmp/e-up8.png" -- gegl:convert-format format="R'G'B' u8" 2>/dev/null
expect upscale-as-gegl 0 "^ok$" -- at_least "$(psnr "$tmp/g-up.png" "$tmp/e-up8.png")" 45
expect upscale-ensemble 0 "procedure ok" -- run "$tmp/rgb.png" "$tmp/g-upe.png" "(plug-in-percept-upscale RUN-NONINTERACTIVE image drawable 2 \"$tmp/sr2.safetensors\" 0 1)"
gegl "$tmp/rgb.png" -o "$tmp/e-upe.png" -- percept:upscale model="$tmp/sr2.safetensors" self-ensemble=true gegl:convert-format format="R'G'B' u8" 2>/dev/null
expect upscale-ensemble-as-gegl 0 "^ok$" -- at_least "$(psnr "$tmp/g-upe.png" "$tmp/e-upe.png")" 45

expect stylize-rgba 0 "procedure ok" -- run "$tmp/rgba.png" "$tmp/g-st.png" "(plug-in-percept-stylize RUN-NONINTERACTIVE image drawable \"$tmp/style.safetensors\" 1.0 0 1.0 0)"
expect stylize-rgba-kind 0 "^61x43 rgba$" -- size "$tmp/g-st.png"
gegl "$tmp/rgba.png" -o "$tmp/e-st.png" -- percept:stylize model="$tmp/style.safetensors" gegl:convert-format format="R'G'B'A u8" 2>/dev/null
expect stylize-as-gegl 0 "^ok$" -- at_least "$(psnr "$tmp/g-st.png" "$tmp/e-st.png")" 40

expect reconstruct-grey 0 "procedure ok" -- run "$tmp/grey.png" "$tmp/g-rec.png" "(plug-in-percept-reconstruct RUN-NONINTERACTIVE image drawable \"$tmp/restore.safetensors\" 0.7 0 0)"
expect reconstruct-grey-kind 0 "^61x43 grey$" -- size "$tmp/g-rec.png"

# a selection: outside it nothing changes, inside it does
expect selection 0 "procedure ok" -- run "$tmp/rgb.png" "$tmp/g-sel.png" "(plug-in-percept-stylize RUN-NONINTERACTIVE image drawable \"$tmp/style.safetensors\" 1.0 0 1.0 0)" "(gimp-image-select-rectangle image CHANNEL-OP-REPLACE 10 10 20 15)"
crop() { gegl "$1" -o "$2" -- gegl:crop x=$3 y=$4 width=$5 height=$6 2>/dev/null; }
crop "$tmp/g-sel.png" "$tmp/sel-out.png" 35 0 26 43; crop "$tmp/rgb.png" "$tmp/in-out.png" 35 0 26 43
expect selection-outside-unchanged 0 "^inf$" -- psnr "$tmp/sel-out.png" "$tmp/in-out.png"
crop "$tmp/g-sel.png" "$tmp/sel-in.png" 12 12 16 11; crop "$tmp/rgb.png" "$tmp/in-in.png" 12 12 16 11
expect selection-inside-changed 0 "^[0-9]" -- psnr "$tmp/sel-in.png" "$tmp/in-in.png"

# an invalid model: an error status, and the image exactly as it was
printf 'not a model' > "$tmp/bad.safetensors"
expect bad-model 0 "procedure failed" -- run "$tmp/rgb.png" "$tmp/g-bad.png" "(plug-in-percept-upscale RUN-NONINTERACTIVE image drawable 2 \"$tmp/bad.safetensors\" 0 0)"
expect bad-model-unchanged 0 "^inf$" -- psnr "$tmp/g-bad.png" "$tmp/rgb.png"
expect bad-model-size 0 "^61x43 rgb$" -- size "$tmp/g-bad.png"
expect wrong-task 0 "procedure failed" -- run "$tmp/rgb.png" "$tmp/g-wrong.png" "(plug-in-percept-reconstruct RUN-NONINTERACTIVE image drawable \"$tmp/sr2.safetensors\" 1.0 0 0)"
expect bad-argument 0 "procedure failed" -- run "$tmp/rgb.png" "$tmp/g-arg.png" "(plug-in-percept-upscale RUN-NONINTERACTIVE image drawable 3 \"$tmp/sr2.safetensors\" 0 0)"

echo "test-gimp.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
