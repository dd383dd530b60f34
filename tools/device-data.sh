#!/usr/bin/env bash
# device-data.sh [MEGAPIXELS] -- the training photos for the GPU machine, in data/device.
#
# That machine gets only the repository's working tree, at most 64 MiB of it, and has no
# GEGL: each photo of data/photos and data/photos-gcompris (tools/training-data.sh) is
# halved (2×2 box averages, as `percept train`'s max-megapixels halves) until it has at
# most MEGAPIXELS (default 0.5) and saved as JPEG quality 95; MANIFEST.tsv names each
# one's source. bench/gpu-train.sh converts them to PPM there. The halving also averages
# away camera noise and the sources' own JPEG blocks, which is why 0.5 MP photos trained
# the ×4 network as well as 2 MP ones in a 1,000-step trial (docs/presets.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MP=${1:-0.5}
OUT=$ROOT/data/device
mkdir -p "$OUT"
printf 'name\tsource\twidth\theight\n' > "$OUT/MANIFEST.tsv"
for folder in photos photos-gcompris; do
    manifest=$ROOT/data/$folder/MANIFEST.tsv
    [ -f "$manifest" ] || { echo "device-data: $manifest missing (run tools/training-data.sh)" >&2; exit 1; }
    tail -n +2 "$manifest" | while IFS=$'\t' read -r _ _ _ name w h _; do
        halvings=0 ops=()
        while awk -v w="$w" -v h="$h" -v mp="$MP" 'BEGIN { exit !(w * h > mp * 1e6) }'; do
            w=$((w / 2)) h=$((h / 2)) halvings=$((halvings + 1))
            ops+=(gegl:scale-ratio x=0.5 y=0.5 sampler=linear)
        done
        jpg="${name%.*}.jpg"
        if [ ! -s "$OUT/$jpg" ]; then
            gegl "$ROOT/data/$folder/$name" -- "${ops[@]}" \
                gegl:jpg-save path="$OUT/$jpg" quality=95 > /dev/null 2>&1 ||
                { echo "device-data: $name could not be converted" >&2; continue; }
        fi
        printf '%s\t%s/%s\t%d\t%d\n' "$jpg" "$folder" "$name" "$w" "$h" >> "$OUT/MANIFEST.tsv"
    done
done
echo "device-data: $(($(wc -l < "$OUT/MANIFEST.tsv") - 1)) photos, $(du -sh "$OUT" | cut -f1) in $OUT"
