#!/usr/bin/env bash
# eval-data.sh [DIR] -- the held-out evaluation images (never used for training) as PNG.
#
# kodim02, kodim07 (lossless TIFF, librust-tiff-dev), baboon (opencv-doc) and astronaut,
# chelsea, coffee (python3-skimage) become DIR/NAME.png (default DIR: data/eval), listed
# in DIR/MANIFEST.tsv (package, version, file, name, width, height, licence).
# Packages are fetched with `apt-get download` and unpacked with `dpkg -x`, never installed.
# With the default DIR the cache of tools/training-data.sh is shared (data/debs, data/extract);
# with an explicit DIR it lives in DIR/debs and DIR/extract. PERCEPT_DEBS overrides the .deb folder.
# The standard SR sets (Set5, Set14, BSD100, DIV2K) cannot be had offline.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [[ -n ${1:-} ]]; then DIR=$(realpath -m "$1"); CACHE=$DIR; else DIR=$ROOT/data/eval; CACHE=$ROOT/data; fi
DEBS=${PERCEPT_DEBS:-$CACHE/debs}
EXTRACT=$CACHE/extract

# NAME  PACKAGE  FILE-GLOB-INSIDE-PACKAGE  LICENCE (as upstream states it for that image)
IMAGES='
kodim02   librust-tiff-dev  usr/share/cargo/registry/tiff-*/tests/benches/kodim02*.tif  Kodak-unrestricted-use
kodim07   librust-tiff-dev  usr/share/cargo/registry/tiff-*/tests/benches/kodim07*.tif  Kodak-unrestricted-use
baboon    opencv-doc        usr/share/doc/opencv-doc/examples/data/baboon.jpg           Apache-2.0-AND-BSD-3-Clause
astronaut python3-skimage   usr/lib/python3/dist-packages/skimage/data/astronaut.png    public-domain
chelsea   python3-skimage   usr/lib/python3/dist-packages/skimage/data/chelsea.png      CC0-1.0
coffee    python3-skimage   usr/lib/python3/dist-packages/skimage/data/coffee.png       CC0-1.0
'

. "$(dirname "$0")/debian-fetch.sh"   # fetch PKG

# png_size FILE: "WIDTH HEIGHT" from the PNG IHDR chunk.
png_size() {
    python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print(*struct.unpack(">II", d[16:24]))' "$1"
}

mkdir -p "$DIR"
manifest=$(printf 'package\tversion\tfile\tname\twidth\theight\tlicence')
missing=0
while read -r -u 3 name pkg pattern licence; do   # fd 3: keep stdin for apt/gegl
    [[ -z $name ]] && continue
    if ! fetch "$pkg"; then missing=$((missing + 1)); continue; fi
    src=$(compgen -G "$EXTRACT/$pkg/$pattern" | head -n1 || true)
    if [[ -z $src ]]; then echo "missing $name: no $pattern in $pkg" >&2; missing=$((missing + 1)); continue; fi
    out=$DIR/$name.png
    if [[ ! $out -nt $src ]]; then
        case $src in
            # PNG sources are already 8-bit RGB PNG: copy them bit for bit.
            *.png) cp "$src" "$out" ;;
            # `gegl in -o out.png` writes 16-bit PNG; ask png-save for 8 bits (lossless for
            # 8-bit TIFF, checked against a decode of kodim02).
            *) gegl -- gegl:load path="$src" gegl:png-save path="$out" bitdepth=8 ;;
        esac
    fi
    read -r w h < <(png_size "$out")
    manifest+=$(printf '\n%s\t%s\t%s\t%s\t%s\t%s\t%s' "$pkg" "$(cat "$EXTRACT/$pkg/.version")" \
        "${src#"$EXTRACT/$pkg"}" "$name.png" "$w" "$h" "$licence")
    printf '%-10s %4s x %-4s  %s\n' "$name" "$w" "$h" "${src#"$EXTRACT/"}"
done 3<<< "$IMAGES"
printf '%s\n' "$manifest" > "$DIR/MANIFEST.tsv"
echo "$(( $(wc -l < "$DIR/MANIFEST.tsv") - 1 )) evaluation images in $DIR"
(( missing == 0 )) || { echo "$missing image(s) missing" >&2; exit 1; }
