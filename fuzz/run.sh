#!/usr/bin/env bash
# Builds the fuzz targets with clang (libFuzzer + AddressSanitizer + UndefinedBehavior-
# Sanitizer) and runs each for a given time, or a given number of executions, on a seed
# corpus of valid and broken files (grown by earlier runs: fuzz/out/corpus-*).
#   fuzz/run.sh [SECONDS_PER_TARGET]        (default 60)
#   fuzz/run.sh --runs N [TARGET...]        N executions each (the issue's goal: 10000000)
# Needs clang and libclang-rt-14-dev (Debian). Crashes land in fuzz/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time="${1:-60}") what="${1:-60}s"
targets=(safetensors arch recipe loss-spec)
if [ "${1:-}" = --runs ]; then
    limit=(-runs="$2") what="$2 executions"
    shift 2
    [ $# -eq 0 ] || targets=("$@")
fi
out=fuzz/out
mkdir -p "$out/corpus-safetensors" "$out/corpus-arch" "$out/corpus-recipe" "$out/corpus-loss-spec"
src=$(sed -n "s/^  '\(.*\.c\)',$/core\/\1/p" core/meson.build)
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp
       -D_GNU_SOURCE -DPERCEPT_BUILDING -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION -Icore/include -Icore -Icore/layers -Icore/nets -Icore/io"
libs="-lopenblas -lcjson -lm"
for t in safetensors arch loss-spec; do
    clang $flags fuzz/fuzz-$t.c $src $libs -o "$out/fuzz-$t"
done
# the recipe parser lives in the trainer and uses GLib (and GEGL, through the degradations)
clang $flags -Itrainer fuzz/fuzz-recipe.c trainer/recipe.c trainer/evaluate.c trainer/degrade.c trainer/jpeg.c \
    $src $(pkg-config --cflags --libs gegl-0.4 libjpeg) $libs -o "$out/fuzz-recipe"
# seeds: the golden fixtures, files `percept` writes, every builder's architecture
cp tests/golden/*.safetensors "$out/corpus-safetensors/"
if [ -x build/trainer/percept ]; then
    for kind in johnson sr sr-shuffle discriminator autoencoder vgg16; do
        build/trainer/percept arch "$kind" --layer relu2_2 > "$out/corpus-arch/$kind.json" 2>/dev/null ||
            build/trainer/percept arch "$kind" > "$out/corpus-arch/$kind.json"
    done
    build/trainer/percept init sr-shuffle --scale 2 --channels 4 --blocks 1 --fp16 \
        "$out/corpus-safetensors/tiny.safetensors" >/dev/null
fi
cp presets/recipes/*.ini "$out/corpus-recipe/"
printf '[train]\nsteps = 3\nlosses = l1=1;ssim=0.2\n' > "$out/corpus-recipe/small.ini"
printf '[train]\ndegrade = noise:0-50\narch = restore\n' > "$out/corpus-recipe/restore.ini"
for s in l1 mse tv ssim ms-ssim ssim-ridgeway mmd mmd++ "mmd:p3:w32:s16:sigma0.6:f512:norm:seed1" \
         "feat:vgg16:relu2_2" "style:vgg16#7:relu1_2,relu2_2" "feat:vgg16@missing.safetensors:relu1_1" "style-mmd:sigma2:levels4"; do
    printf '%s' "$s" > "$out/corpus-loss-spec/$(printf '%s' "$s" | md5sum | cut -c1-8)"
done
for t in "${targets[@]}"; do
    echo "== fuzz-$t for $what ($(date +%T))"
    OMP_NUM_THREADS=1 "$out/fuzz-$t" "${limit[@]}" -max_len=65536 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$out/" "$out/corpus-$t" 2>&1 |
        grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|SUMMARY|Done [0-9]+ runs" | tail -3
done
