#!/usr/bin/env bash
# Every shipped preset (presets/*.safetensors): a valid percept weight file with the
# metadata docs/presets.md relies on, found by name by its operation, and run on a small
# image with the right result size. Arguments: the percept command; GEGL_PATH from meson.
set -u
percept="$1"
presets="$(cd "$(dirname "$0")/../presets" && pwd)"
tmp="${PERCEPT_TEST_TMP:-/tmp}/test-presets.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
command -v gegl >/dev/null || { echo "no gegl command: skipped"; exit 77; }
ls "$presets"/*.safetensors >/dev/null 2>&1 || { echo "no shipped presets yet: skipped"; exit 77; }
. "$(dirname "$0")/expect.sh"
gegl() { timeout 120 env ${PERCEPT_SANITIZER_PRELOAD:+LD_PRELOAD="$PERCEPT_SANITIZER_PRELOAD"} gegl "$@"; }
size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1"; }
export PERCEPT_PRESET_PATH="$presets"
gegl -o "$tmp/in.png" -x "<gegl><node operation='gegl:crop' width='40' height='30'/><node operation='gegl:plasma' seed='3' width='64' height='64'/></gegl>" 2>/dev/null
for file in "$presets"/*.safetensors; do
    name=$(basename "$file" .safetensors)
    info=$("$percept" info "$file")
    task=$(sed -n 's/^Task: *\([a-z]*\).*/\1/p' <<<"$info")
    for key in percept.name percept.description percept.recipe percept.data percept.steps percept.metrics; do
        expect "$name-$key" 0 "$key" -- echo "$info"
    done
    # cut to one line in the table, whole with --full: the recipe's [train] group is there
    expect "$name-full-recipe" 0 "^    \[train\]$" -- "$percept" info --full "$file"
    case "$task" in
        upscale) op=percept:upscale; scale=$(sed -n 's/^ *percept.scale *//p' <<<"$info")
                 want="$((40 * scale))x$((30 * scale))" ;;
        reconstruct) op=percept:reconstruct want=40x30 ;;
        stylize) op=percept:stylize want=40x30 ;;
        *) expect "$name-task" 0 "^(upscale|reconstruct|stylize)$" -- echo "$task"; continue ;;
    esac
    gegl "$tmp/in.png" -o "$tmp/$name.png" -- $op model=$name 2> "$tmp/$name.log"
    expect "$name-no-warning" 1 "" -- grep -qi "passes through" "$tmp/$name.log"
    expect "$name-size" 0 "^$want$" -- size "$tmp/$name.png"
done
echo "test-presets.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
